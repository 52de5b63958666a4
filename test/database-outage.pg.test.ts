/**
 * A PostgreSQL outage as the app sees it, without stopping the shared server: the app reaches its scratch database
 * through a TCP proxy owned by the test, which cuts every connection and refuses new ones, then lets them through
 * again. While it is down, requests that need the database answer 503 problems at once (they are answered while the
 * outage still lasts: a request waiting for the database would hang the test); when it is back the app recovers by
 * itself and reads and writes again. The whole scenario under load, with builds, is test/chaos/outage.pg.chaos.ts.
 */
import { createServer as createTcpServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from '../src/server.js';
import { bearer, createScratchDatabase, login, problemOf, testConfig, type ScratchDatabase } from './helper.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Forwards a local port to PostgreSQL. `down()` cuts every connection and closes the port (a stopped server);
 * `freeze()` keeps every connection open but holds whatever is sent either way (a network partition), `thaw()`
 * delivers it and forwards again.
 */
class SwitchableProxy {
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  private frozen = false;
  private held: (() => void)[] = [];
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  async up(): Promise<void> {
    const server = createTcpServer((client) => {
      const upstream = connect(this.target.port, this.target.host);
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on('close', () => this.sockets.delete(socket));
        socket.on('error', () => undefined);
      }
      this.forward(client, upstream);
      this.forward(upstream, client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }

  freeze(): void {
    this.frozen = true;
  }

  thaw(): void {
    this.frozen = false;
    const held = this.held;
    this.held = [];
    for (const deliver of held) deliver();
  }

  private forward(from: Socket, to: Socket): void {
    from.on('data', (chunk: Buffer) => {
      if (this.frozen) this.held.push(() => to.write(chunk));
      else to.write(chunk);
    });
  }
}

describe('PostgreSQL outage through a proxy (pg)', () => {
  let scratch: ScratchDatabase;
  let proxy: SwitchableProxy;
  let app: FastifyInstance;

  beforeAll(async () => {
    scratch = await createScratchDatabase('pg');
    const direct = new URL(scratch.url);
    proxy = new SwitchableProxy({ host: direct.hostname, port: Number(direct.port || 5432) });
    await proxy.up();
    const proxied = new URL(scratch.url);
    proxied.port = String(proxy.port);
    app = await createServer(
      testConfig(proxied.toString(), {
        DATABASE_PING_INTERVAL_MS: '200',
        DATABASE_PING_TIMEOUT_MS: '1000',
        DATABASE_CONNECT_TIMEOUT_S: '2',
        DATABASE_REQUEST_TIMEOUT_S: '1',
      }),
      { logger: false },
    );
    await app.ready();
  });

  afterAll(async () => {
    await app?.close().catch(() => undefined);
    await proxy?.down();
    await scratch?.drop();
  });

  it('answers 503 problems while the database is unreachable, then reads and writes again by itself', async () => {
    const token = await login(app);
    const auth = bearer(token);
    const created = await app.inject({ method: 'POST', url: '/projects', headers: auth, payload: { name: 'before-outage', repo: 'https://example.com/a.git' } });
    expect(created.statusCode, created.body).toBe(201);

    await proxy.down();
    // A request sent at the moment of the cut meets a dropped or refused connection: a 503 problem, not a hang.
    const atCut = await app.inject({ method: 'GET', url: '/projects', headers: auth });
    expect(atCut.statusCode, atCut.body).toBe(503);
    expect(problemOf(atCut).error).toBe('service_unavailable');
    for (let waited = 0; waited < 5000 && app.databaseAvailability.available; waited += 20) await sleep(20);
    expect(app.databaseAvailability.available, 'the circuit opened').toBe(false);

    const during = await Promise.all(
      [
        { method: 'GET' as const, url: '/projects' },
        { method: 'GET' as const, url: `/projects/${(created.json() as { id: number }).id}` },
        { method: 'POST' as const, url: '/projects', payload: { name: 'during-outage', repo: 'https://example.com/b.git' } },
        { method: 'GET' as const, url: '/health/ready' },
      ].map((request) => app.inject({ ...request, headers: auth })),
    );
    for (const response of during) {
      expect(response.statusCode, response.body).toBe(503);
      expect(problemOf(response).error).toBe('service_unavailable');
      expect(response.headers['retry-after']).toBeDefined();
    }
    expect((await app.inject({ method: 'GET', url: '/health/live' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/status' })).json()).toMatchObject({ status: 'degraded', db: 'error' });

    await proxy.up();
    let readyAgain = false;
    for (let waited = 0; waited < 10_000 && !readyAgain; waited += 100) {
      readyAgain = (await app.inject({ method: 'GET', url: '/health/ready' })).statusCode === 200;
      if (!readyAgain) await sleep(100);
    }
    expect(readyAgain, 'ready again once the database answers').toBe(true);
    const listed = await app.inject({ method: 'GET', url: '/projects', headers: auth });
    expect(listed.statusCode, listed.body).toBe(200);
    expect((listed.json() as { items: { name: string }[] }).items.map((project) => project.name)).toEqual(['before-outage']);
    const afterwards = await app.inject({ method: 'POST', url: '/projects', headers: auth, payload: { name: 'after-outage', repo: 'https://example.com/c.git' } });
    expect(afterwards.statusCode, afterwards.body).toBe(201);
  });

  it('answers 503 when the database stops answering without closing anything (a partition), then recovers', async () => {
    const token = await login(app);
    const auth = bearer(token);
    expect((await app.inject({ method: 'GET', url: '/projects', headers: auth })).statusCode).toBe(200);

    proxy.freeze();
    // Its queries are sent and never answered: DATABASE_REQUEST_TIMEOUT_S (1 s here) ends the wait with a 503.
    const stuck = await app.inject({ method: 'GET', url: '/projects', headers: auth });
    expect(stuck.statusCode, stuck.body).toBe(503);
    expect(problemOf(stuck)).toMatchObject({ error: 'service_unavailable', detail: expect.stringMatching(/No answer from the database within 1 s/) });
    expect(stuck.headers['retry-after']).toBeDefined();
    // The unanswered pings open the circuit: from then on, 503 at once.
    for (let waited = 0; waited < 5000 && app.databaseAvailability.available; waited += 20) await sleep(20);
    expect(app.databaseAvailability.available, 'the circuit opened').toBe(false);
    const refused = await app.inject({ method: 'GET', url: '/me', headers: auth });
    expect(refused.statusCode).toBe(503);
    expect(problemOf(refused).detail).toBe('The database is unavailable; retry shortly');

    proxy.thaw();
    let served = false;
    for (let waited = 0; waited < 10_000 && !served; waited += 100) {
      served = (await app.inject({ method: 'GET', url: '/projects', headers: auth })).statusCode === 200;
      if (!served) await sleep(100);
    }
    expect(served, 'served again once the database answers').toBe(true);
    const written = await app.inject({ method: 'POST', url: '/projects', headers: auth, payload: { name: 'after-partition', repo: 'https://example.com/d.git' } });
    expect(written.statusCode, written.body).toBe(201);
  });
});
