import { connect } from 'node:net';

/** One HTTP/1.1 response as it came over the wire. */
export interface RawResponse {
  status: number;
  /** Header names in lower case. */
  headers: Record<string, string>;
  body: string;
}

/**
 * Every response in what a server wrote on one connection, in order: a status line, headers, and a body as long as
 * its Content-Length (all of these servers' answers have one). Bytes after the last whole response are an error.
 */
export function parseResponses(received: string): RawResponse[] {
  const responses: RawResponse[] = [];
  let rest = received;
  while (rest.length > 0) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) throw new Error(`an incomplete response head: ${JSON.stringify(rest.slice(0, 200))}`);
    const [statusLine = '', ...headerLines] = rest.slice(0, end).split('\r\n');
    const status = /^HTTP\/1\.1 (\d{3}) /.exec(statusLine);
    if (!status) throw new Error(`not a status line: ${JSON.stringify(statusLine.slice(0, 200))}`);
    const headers: Record<string, string> = {};
    for (const line of headerLines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = Number(headers['content-length'] ?? 0);
    const bodyStart = end + 4;
    const body = Buffer.from(rest.slice(bodyStart), 'utf8').subarray(0, length).toString('utf8');
    responses.push({ status: Number(status[1]), headers, body });
    rest = rest.slice(bodyStart + body.length);
  }
  return responses;
}

/**
 * Opens a connection, writes each string of `script` in turn (a number is a pause of that many ms), and resolves
 * with everything the server wrote once it closes the connection (use `Connection: close` for answers that would
 * keep it open).
 */
export function exchange(port: number, script: (string | number)[]): Promise<RawResponse[]> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    // The server may close while a part is still being written (its answer came first): what it wrote still counts.
    socket.on('error', () => undefined);
    socket.on('close', () => {
      try {
        resolve(parseResponses(Buffer.concat(chunks).toString('utf8')));
      } catch (error) {
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
    void (async () => {
      for (const part of script) {
        if (typeof part === 'number') await new Promise((wait) => setTimeout(wait, part));
        else if (!socket.destroyed) socket.write(part);
      }
    })();
  });
}

/** The head of a request with a JSON body of `length` bytes (of which the script sends what it likes). */
export const jsonHead = (method: string, path: string, length: number, headers: Record<string, string> = {}) =>
  `${method} ${path} HTTP/1.1\r\nHost: usine.test\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n` +
  Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('') +
  '\r\n';
