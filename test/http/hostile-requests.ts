/**
 * Hostile request heads, and a raw HTTP/1.1 client to send them with: fetch() and app.inject() would normalise or
 * refuse some of them before they left, and Node's own header limit (16 KiB for the whole head) is part of what is
 * tested. Shared by test/http/hostile-input.test.ts and the chaos scenario test/chaos/hostile-headers.chaos.ts.
 */
import { connect } from 'node:net';

/** Node refuses a request head over 16 KiB with a bare 431 before any JavaScript sees it. */
export const NODE_HEADER_LIMIT = 16 * 1024;
/** The size of the values that Node refuses itself. */
export const HUGE = 64 * 1024;
/** The size of the values that get through to the application: as much as fits under Node's limit. */
export const JUST_UNDER_LIMIT = 15_000;

export interface HostileRequest {
  label: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
  /** The statuses the server may answer (a refusal or a parse), never 5xx nor a hang. */
  expected: number[];
}

export interface RawAnswer {
  status: number;
  head: string;
  body: string;
}

/**
 * Sends one request on its own connection (`Connection: close`) and resolves with the answer once the server closes it.
 */
export function rawRequest(port: number, request: Pick<HostileRequest, 'method' | 'path' | 'headers' | 'body'>): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    socket.setNoDelay(true);
    socket.on('connect', () => {
      const lines = [`${request.method} ${request.path} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close'];
      for (const [name, value] of Object.entries(request.headers)) lines.push(`${name}: ${value}`);
      socket.write(`${lines.join('\r\n')}\r\n\r\n${request.body ?? ''}`);
    });
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    // A server that refuses a head may reset the connection after answering: what arrived is the answer.
    socket.on('error', (error) => (chunks.length > 0 ? undefined : reject(error)));
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const split = text.indexOf('\r\n\r\n');
      const head = split === -1 ? text : text.slice(0, split);
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0);
      resolve({ status, head, body: split === -1 ? '' : text.slice(split + 4) });
    });
  });
}

/**
 * The requests: a `Range` that made the old regex backtrack for ~0.4 s (blanks then a stray character), then every
 * header and query value the API reads, once at 64 KiB (Node's 431) and once just under the limit (the API's own
 * answer: parsed, or refused with a problem).
 */
export function hostileRequests(token: string, buildId: number, projectId: number): HostileRequest[] {
  const auth = { Authorization: `Bearer ${token}` };
  const log = `/builds/${buildId}/logs`;
  const requests: HostileRequest[] = [];
  const blanks = (size: number) => ' '.repeat(size);
  requests.push({ label: 'Range: blanks then x (old regex: quadratic)', method: 'GET', path: log, headers: { ...auth, Range: `bytes=${blanks(JUST_UNDER_LIMIT)}x` }, expected: [200] });
  requests.push({ label: 'Range: bytes= blanks - blanks x', method: 'GET', path: log, headers: { ...auth, Range: `bytes=0${blanks(7000)}-${blanks(7000)}x` }, expected: [200] });
  const perSize = (size: number, expectedBelow: (label: string) => number[]): HostileRequest[] => {
    const above = size > NODE_HEADER_LIMIT;
    const expect = (label: string) => (above ? [431] : expectedBelow(label));
    const digits = '9'.repeat(size);
    const text = 'a'.repeat(size);
    return [
      { label: `Range ${size}`, method: 'GET', path: log, headers: { ...auth, Range: `bytes=${digits}-` }, expected: expect('range') },
      { label: `Accept ${size}`, method: 'GET', path: log, headers: { ...auth, Accept: `text/plain;q=0.5,${'x/y;'.repeat(size / 4)}` }, expected: expect('accept') },
      { label: `Last-Event-ID ${size}`, method: 'GET', path: log, headers: { ...auth, Accept: 'text/event-stream', 'Last-Event-ID': digits }, expected: expect('last-event-id') },
      { label: `X-Request-Id ${size}`, method: 'GET', path: '/health/live', headers: { 'X-Request-Id': `${text}!` }, expected: expect('request-id') },
      { label: `Authorization ${size}`, method: 'GET', path: '/projects', headers: { Authorization: `Bearer ${text}` }, expected: expect('authorization') },
      { label: `Authorization blanks ${size}`, method: 'GET', path: '/projects', headers: { Authorization: `Bearer${blanks(size)}x` }, expected: expect('authorization') },
      { label: `?q= ${size}`, method: 'GET', path: `/projects?q=${text}`, headers: auth, expected: expect('q') },
      { label: `?offset= ${size}`, method: 'GET', path: `${log}?offset=${digits}`, headers: auth, expected: expect('offset') },
      { label: `?page= ${size}`, method: 'GET', path: `/projects/${projectId}/builds?page=${'%20'.repeat(Math.floor(size / 3))}1`, headers: auth, expected: expect('page') },
      { label: `?junk= ${size}`, method: 'GET', path: `/projects?junk=${text}`, headers: auth, expected: expect('junk') },
      { label: `If-None-Match ${size}`, method: 'GET', path: '/health/live', headers: { 'If-None-Match': `${'W/"a",'.repeat(size / 6)}` }, expected: expect('if-none-match') },
      { label: `Content-Type ${size}`, method: 'POST', path: '/projects', headers: { ...auth, 'Content-Type': `application/json;${' a=b;'.repeat(size / 5)}`, 'Content-Length': '2' }, body: '{}', expected: expect('content-type') },
    ];
  };
  const below: Record<string, number[]> = {
    // Not one range this server serves: ignored, the whole log.
    range: [416],
    accept: [200],
    'last-event-id': [400],
    'request-id': [200],
    authorization: [401],
    q: [400],
    offset: [400],
    page: [400],
    junk: [200],
    'if-none-match': [200],
    'content-type': [400, 415],
  };
  requests.push(...perSize(HUGE, () => []), ...perSize(JUST_UNDER_LIMIT, (label) => below[label] ?? []));
  return requests;
}
