/**
 * sendWebhook against real HTTP servers on 127.0.0.1: what it sends, what it keeps of the answer, and every way a
 * receiver can fail it (an error status, a redirect, silence, a flood, a closed port) ending as an outcome.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, LookupFunction } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { afterEach, describe, expect, it } from 'vitest';
import { shouldRetry } from '../../src/webhooks/backoff.js';
import { sendWebhook } from '../../src/webhooks/send.js';
import { newMessageId, newSecret, webhookHeaders } from '../../src/webhooks/signature.js';

interface Received {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

interface Receiver {
  url: string;
  port: number;
  received: Received[];
  connections: number;
  close: () => Promise<void>;
}

const receivers: Receiver[] = [];

/** A server that records every request (its body read whole) before `handle` answers it. */
async function receiver(handle: (request: Received, response: ServerResponse) => void): Promise<Receiver> {
  const received: Received[] = [];
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const entry = {
        method: request.method ?? '',
        url: request.url ?? '',
        headers: request.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      received.push(entry);
      handle(entry, response);
    });
  });
  const state: Receiver = {
    url: '',
    port: 0,
    received,
    connections: 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  server.on('connection', () => state.connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.port = (server.address() as AddressInfo).port;
  state.url = `http://127.0.0.1:${state.port}/hooks/usine`;
  receivers.push(state);
  return state;
}

afterEach(async () => {
  await Promise.all(receivers.splice(0).map((entry) => entry.close()));
});

const body = JSON.stringify({ type: 'build.finished', data: { id: 7, note: 'déjà vu ✓' } });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function deliveryHeaders(secrets: readonly string[] = [newSecret()]) {
  return webhookHeaders({
    msgId: newMessageId(),
    timestampS: Math.floor(Date.now() / 1000),
    body,
    secrets,
    eventType: 'build.finished',
    userAgent: 'Usine-Webhooks/1.0',
  });
}

describe('sendWebhook', () => {
  it('POSTs the body intact with the headers as given, and returns a 200 with its body and headers', async () => {
    const server = await receiver((_request, response) => {
      response.setHeader('set-cookie', ['a=1', 'b=2']);
      response.writeHead(200, { 'content-type': 'text/plain', 'x-receiver': 'ok' }).end('thanks');
    });
    const headers = deliveryHeaders();
    const outcome = await sendWebhook({ url: server.url, headers, body, timeoutMs: 5000 });

    expect(outcome.error).toBeUndefined();
    expect(outcome.status).toBe(200);
    expect(outcome.body).toBe('thanks');
    expect(outcome.headers?.['x-receiver']).toBe('ok');
    expect(outcome.headers?.['content-type']).toBe('text/plain');
    // A repeated header is one string.
    expect(outcome.headers?.['set-cookie']).toBe('a=1, b=2');
    expect(outcome.durationMs).toBeGreaterThanOrEqual(0);
    expect(shouldRetry(outcome)).toBe(false);

    expect(server.received).toHaveLength(1);
    const [request] = server.received;
    expect(request?.method).toBe('POST');
    expect(request?.url).toBe('/hooks/usine');
    expect(request?.body).toBe(body);
    for (const [name, value] of Object.entries(headers)) expect(request?.headers[name], name).toBe(value);
    // The length in bytes, not characters: the body has non-ASCII in it.
    expect(request?.headers['content-length']).toBe(String(Buffer.byteLength(body)));
    expect(Buffer.byteLength(body)).toBeGreaterThan(body.length);
    // agent: false, no keep-alive: the connection ends with the delivery.
    expect(request?.headers.connection).toBe('close');
  });

  it('sends its own content-length, whatever the caller put in the headers', async () => {
    const server = await receiver((_request, response) => response.writeHead(204).end());
    const outcome = await sendWebhook({ url: server.url, headers: { 'Content-Length': '3' }, body, timeoutMs: 5000 });
    expect(outcome.status).toBe(204);
    expect(server.received[0]?.body).toBe(body);
    expect(server.received[0]?.headers['content-length']).toBe(String(Buffer.byteLength(body)));
  });

  it('returns a 500 as an outcome with its status and body, to be retried', async () => {
    const server = await receiver((_request, response) => response.writeHead(500).end('database down'));
    const outcome = await sendWebhook({ url: server.url, headers: deliveryHeaders(), body, timeoutMs: 5000 });
    expect(outcome).toMatchObject({ status: 500, body: 'database down' });
    expect(outcome.error).toBeUndefined();
    expect(shouldRetry(outcome)).toBe(true);
  });

  it('does not follow a redirect: the 302 is the outcome and its target sees nothing', async () => {
    const target = await receiver((_request, response) => response.writeHead(200).end('followed'));
    const redirecting = await receiver((_request, response) => response.writeHead(302, { location: target.url }).end());
    const outcome = await sendWebhook({ url: redirecting.url, headers: deliveryHeaders(), body, timeoutMs: 5000 });
    expect(outcome.status).toBe(302);
    expect(outcome.headers?.location).toBe(target.url);
    expect(outcome.error).toBeUndefined();
    expect(redirecting.received).toHaveLength(1);
    expect(target.received).toHaveLength(0);
    expect(target.connections).toBe(0);
    expect(shouldRetry(outcome)).toBe(false);
  });

  it('gives up on a slow receiver at the deadline, long before it would answer', async () => {
    let answer: NodeJS.Timeout | undefined;
    const server = await receiver((_request, response) => {
      answer = setTimeout(() => response.writeHead(200).end('too late'), 20_000);
    });
    try {
      const outcome = await sendWebhook({ url: server.url, headers: deliveryHeaders(), body, timeoutMs: 300 });
      expect(outcome.error).toBe('timed out after 0.3 s');
      expect(outcome.status).toBeUndefined();
      expect(outcome.durationMs).toBeGreaterThanOrEqual(250);
      expect(outcome.durationMs).toBeLessThan(10_000);
      // The request did arrive: the deadline covers the wait for the answer, not only the connection.
      expect(server.received).toHaveLength(1);
      expect(shouldRetry(outcome)).toBe(true);
    } finally {
      clearTimeout(answer);
    }
  });

  it('keeps the status when the deadline strikes while the body is still coming', async () => {
    const server = await receiver((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/plain' });
      response.write('partial ');
      // Never ended: the rest of the body never comes.
    });
    const outcome = await sendWebhook({ url: server.url, headers: deliveryHeaders(), body, timeoutMs: 300 });
    expect(outcome).toMatchObject({ status: 200, body: 'partial ', error: 'timed out after 0.3 s' });
  });

  it('reads only the first 4096 bytes of a 1 MB body', async () => {
    const large = Buffer.alloc(1024 * 1024);
    for (let index = 0; index < large.length; index++) large[index] = 97 + (index % 26);
    const server = await receiver((_request, response) => response.writeHead(200).end(large));
    const outcome = await sendWebhook({ url: server.url, headers: deliveryHeaders(), body, timeoutMs: 5000 });
    expect(outcome.status).toBe(200);
    expect(outcome.error).toBeUndefined();
    expect(outcome.body).toBe(large.subarray(0, 4096).toString('utf8'));
  });

  it('stops reading an endless body instead of waiting for its end', async () => {
    let written = 0;
    let hungUp: () => void = () => undefined;
    const receiverSawHangUp = new Promise<void>((resolve) => (hungUp = resolve));
    const server = await receiver((_request, response) => {
      response.on('close', hungUp);
      response.writeHead(200);
      const chunk = Buffer.alloc(64 * 1024, 'x');
      const pump = () => {
        while (!response.destroyed && !response.writableEnded) {
          written += chunk.length;
          if (!response.write(chunk)) return void response.once('drain', pump);
        }
      };
      pump();
    });
    const outcome = await sendWebhook({ url: server.url, headers: deliveryHeaders(), body, timeoutMs: 10_000 });
    // Had it kept reading, only the 10 s deadline would have ended it, with an error.
    expect(outcome.error).toBeUndefined();
    expect(outcome.status).toBe(200);
    expect(outcome.body).toBe('x'.repeat(4096));
    // And the connection is closed, not left draining the flood in the background.
    const hangUp = await Promise.race([receiverSawHangUp.then(() => 'closed'), sleep(5000).then(() => 'still open')]);
    expect(hangUp).toBe('closed');
    const writtenAtHangUp = written;
    await sleep(100);
    expect(written).toBe(writtenAtHangUp);
  });

  it('does not end the kept body with half a character', async () => {
    // 4096 is not a multiple of 3: the limit cuts the 1366th '€' (three bytes in UTF-8).
    const server = await receiver((_request, response) => response.writeHead(400).end('€'.repeat(3000)));
    const outcome = await sendWebhook({ url: server.url, headers: deliveryHeaders(), body, timeoutMs: 5000 });
    expect(outcome.status).toBe(400);
    expect(outcome.body).toBe('€'.repeat(1365));
  });

  it('reports a closed port as an error', async () => {
    const closed = await receiver(() => undefined);
    await closed.close();
    const outcome = await sendWebhook({ url: closed.url, headers: deliveryHeaders(), body, timeoutMs: 5000 });
    expect(outcome.status).toBeUndefined();
    expect(outcome.error).toMatch(/ECONNREFUSED/);
    expect(shouldRetry(outcome)).toBe(true);
  });

  it('does not connect at all when refuseLiteral gives a reason', async () => {
    const server = await receiver((_request, response) => response.writeHead(200).end());
    const seen: string[] = [];
    const outcome = await sendWebhook({
      url: server.url,
      headers: deliveryHeaders(),
      body,
      timeoutMs: 5000,
      refuseLiteral: (url) => {
        seen.push(url.hostname);
        return `${url.hostname} is a loopback address`;
      },
    });
    expect(outcome).toMatchObject({ error: '127.0.0.1 is a loopback address' });
    expect(outcome.status).toBeUndefined();
    expect(seen).toEqual(['127.0.0.1']);
    // Give a stray connection the time to arrive before saying there was none.
    await sleep(100);
    expect(server.connections).toBe(0);
    expect(server.received).toHaveLength(0);
  });

  it('connects when refuseLiteral has nothing against the address', async () => {
    const server = await receiver((_request, response) => response.writeHead(202).end());
    const outcome = await sendWebhook({ url: server.url, headers: {}, body, timeoutMs: 5000, refuseLiteral: () => undefined });
    expect(outcome.status).toBe(202);
    expect(server.received).toHaveLength(1);
  });

  it('resolves host names through the given lookup, which can refuse the address', async () => {
    const server = await receiver((_request, response) => response.writeHead(200).end('resolved'));
    const asked: string[] = [];
    const toLoopback: LookupFunction = (hostname, options, callback) => {
      asked.push(hostname);
      if (options.all) callback(null, [{ address: '127.0.0.1', family: 4 }]);
      else callback(null, '127.0.0.1', 4);
    };
    const url = `http://receiver.example.test:${server.port}/hooks`;
    const outcome = await sendWebhook({ url, headers: {}, body, timeoutMs: 5000, lookup: toLoopback });
    expect(outcome).toMatchObject({ status: 200, body: 'resolved' });
    expect(asked).toEqual(['receiver.example.test']);
    expect(server.received[0]?.headers.host).toBe(`receiver.example.test:${server.port}`);

    const refusing: LookupFunction = (hostname, _options, callback) =>
      callback(Object.assign(new Error(`${hostname} resolves to a private address`), { code: 'EADDRNOTALLOWED' }), '', 4);
    const refused = await sendWebhook({ url, headers: {}, body, timeoutMs: 5000, lookup: refusing });
    expect(refused.status).toBeUndefined();
    expect(refused.error).toBe('receiver.example.test resolves to a private address');
    expect(server.connections).toBe(1);
  });

  it('never throws: a bad URL, another scheme, a header Node refuses are outcomes', async () => {
    const bad = await sendWebhook({ url: 'not a url', headers: {}, body, timeoutMs: 1000 });
    expect(bad.error).toMatch(/invalid URL/);
    const ftp = await sendWebhook({ url: 'ftp://127.0.0.1/x', headers: {}, body, timeoutMs: 1000 });
    expect(ftp.error).toMatch(/unsupported URL scheme ftp:/);
    const server = await receiver((_request, response) => response.writeHead(200).end());
    const injected = await sendWebhook({ url: server.url, headers: { 'usine-event': 'a\r\nx-evil: 1' }, body, timeoutMs: 1000 });
    expect(injected.status).toBeUndefined();
    expect(injected.error).toMatch(/invalid character/i);
    const throwing = await sendWebhook({
      url: server.url,
      headers: {},
      body,
      timeoutMs: 1000,
      refuseLiteral: () => {
        throw new Error('guard broke');
      },
    });
    expect(throwing.error).toMatch(/guard broke/);
    expect(server.received).toHaveLength(0);
  });
});

describe('a delivery end to end', () => {
  /** A receiver that checks each delivery with the reference verifier, as a customer's endpoint would. */
  async function verifyingReceiver(secret: string) {
    const verdicts: string[] = [];
    const server = await receiver((request, response) => {
      try {
        const payload = new Webhook(secret).verify(request.body, request.headers as Record<string, string>);
        verdicts.push(`ok ${request.headers['usine-event']} ${JSON.stringify(payload)}`);
        response.writeHead(204).end();
      } catch (error) {
        verdicts.push(`refused: ${(error as Error).message}`);
        response.writeHead(400).end((error as Error).message);
      }
    });
    return { server, verdicts };
  }

  it('is verified by the receiver with standardwebhooks, during a rotation with either secret', async () => {
    const [next, old] = [newSecret(), newSecret()];
    for (const known of [next, old]) {
      const { server, verdicts } = await verifyingReceiver(known);
      const outcome = await sendWebhook({ url: server.url, headers: deliveryHeaders([next, old]), body, timeoutMs: 5000 });
      expect(outcome.status, outcome.body).toBe(204);
      expect(verdicts).toEqual([`ok build.finished ${body}`]);
    }
  });

  it('is refused by a receiver with another secret', async () => {
    const { server, verdicts } = await verifyingReceiver(newSecret());
    const outcome = await sendWebhook({ url: server.url, headers: deliveryHeaders(), body, timeoutMs: 5000 });
    expect(outcome).toMatchObject({ status: 400, body: 'No matching signature found' });
    expect(verdicts).toEqual(['refused: No matching signature found']);
  });
});
