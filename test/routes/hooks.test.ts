/**
 * Webhooks through HTTP, delivered to a real receiver listening on loopback: Standard Webhooks signatures checked by
 * the reference library (`standardwebhooks`), retries with the same webhook-id, Retry-After, auto-disable and
 * re-enable, redelivery, ordering, secret rotation, history, and the SSRF guard's refusals.
 */
import { createServer as createHttpServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { eq } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from '../../src/server.js';
import { injectAs, problemOf, testConfig, testDb, uniqueName, useTestApp, waitForBuild } from '../helper.js';
import { createPersistentDatabase, type PersistentDatabase } from '../persistent-database.js';
import { verifyWith } from '../webhook-verify.js';

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
}

/** A receiver on loopback: records every request; `answer` decides each status (and headers). */
class Receiver {
  readonly received: Received[] = [];
  answer: (request: Received, index: number) => { status: number; headers?: Record<string, string>; body?: string } = () => ({ status: 200 });
  #server: Server | undefined;
  url = '';

  async start(): Promise<void> {
    this.#server = createHttpServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const received = { headers: request.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() };
        this.received.push(received);
        const { status, headers = {}, body = 'ok' } = this.answer(received, this.received.length - 1);
        response.writeHead(status, headers).end(body);
      });
    });
    await new Promise<void>((resolve) => this.#server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.#server!.address() as AddressInfo).port}/hook`;
  }

  async waitFor(count: number, timeoutMs = 15_000): Promise<Received[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.received.length < count) {
      if (Date.now() > deadline) throw new Error(`the receiver got ${this.received.length} of ${count} deliveries`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return this.received;
  }

  async stop(): Promise<void> {
    await new Promise((resolve) => this.#server?.close(resolve));
  }
}

async function createProject(app: FastifyInstance, token: string) {
  const response = await injectAs(app, token, { method: 'POST', url: '/projects', payload: { name: uniqueName('hook'), repo: 'https://github.com/demo/repo' } });
  expect(response.statusCode, response.body).toBe(201);
  return response.json<{ id: number }>().id;
}

async function createHook(app: FastifyInstance, token: string, projectId: number, payload: object) {
  const response = await injectAs(app, token, { method: 'POST', url: `/projects/${projectId}/hooks`, payload });
  expect(response.statusCode, response.body).toBe(201);
  return response.json<{ id: number; secret: string; active: boolean; url: string }>();
}

async function until<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`not reached in time: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe(`webhooks (${testDb})`, () => {
  const ctx = useTestApp({ BUILD_FAIL_RATE: '0', WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true', WEBHOOK_RETRY_BASE_S: '0.05', WEBHOOK_TIMEOUT_S: '2' });
  const receiver = new Receiver();
  beforeAll(() => receiver.start());
  afterAll(() => receiver.stop());
  const get = (url: string) => injectAs(ctx.app, ctx.adminToken, { method: 'GET', url });

  it("delivers a build's events signed as Standard Webhooks says, verified by the reference library, in event order", async () => {
    receiver.received.length = 0;
    receiver.answer = () => ({ status: 200 });
    const project = await createProject(ctx.app, ctx.adminToken);
    const hook = await createHook(ctx.app, ctx.adminToken, project, { url: receiver.url, events: ['build.*'], description: 'ci' });
    expect(hook.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(hook.secret.slice('whsec_'.length), 'base64')).toHaveLength(32);
    // The secret is shown once: never in a read.
    expect((await get(`/projects/${project}/hooks/${hook.id}`)).json()).not.toHaveProperty('secret');
    expect((await get(`/projects/${project}/hooks`)).body).not.toContain(hook.secret);

    const trigger = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: `/projects/${project}/build`, payload: {} });
    const build = trigger.json<{ id: number }>();
    const finished = await waitForBuild(ctx.app, ctx.adminToken, build.id);
    const received = await receiver.waitFor(3);
    const payloads = received.map((one) => verifyWith(hook.secret, one));
    expect(payloads.map((payload) => payload.type)).toEqual(['build.queued', 'build.running', 'build.succeeded']);
    const { logs: _logs, ...withoutLogs } = finished;
    expect(payloads[2]!.data).toEqual(withoutLogs);
    for (const one of received) {
      expect(one.headers['usine-event']).toBe(JSON.parse(one.body).type);
      expect(one.headers['user-agent']).toMatch(/^Usine-Hookshot\/\d+\.\d+\.\d+/);
      expect(one.headers['content-type']).toBe('application/json');
      expect(Math.abs(Number(one.headers['webhook-timestamp']) - Date.now() / 1000)).toBeLessThan(60);
    }
    expect(new Set(received.map((one) => one.headers['webhook-id'])).size).toBe(3);
    // Another secret does not verify.
    expect(() => verifyWith(`whsec_${Buffer.alloc(32, 7).toString('base64')}`, received[0]!)).toThrow();

    const history = await until(
      () => get(`/projects/${project}/hooks/${hook.id}/deliveries`).then((response) => response.json<{ items: { status: string; id: number }[]; total: number }>()),
      (page) => page.items.every((item) => item.status === 'succeeded') && page.total === 3,
    );
    const detail = (await get(`/projects/${project}/hooks/${hook.id}/deliveries/${history.items[0]!.id}`)).json<{
      body: string;
      attempts_made: { response_status: number; request_headers: Record<string, string>; response_body: string }[];
    }>();
    expect(detail.attempts_made).toHaveLength(1);
    expect(detail.attempts_made[0]).toMatchObject({ response_status: 200, response_body: 'ok' });
    expect(received.map((one) => one.body)).toContain(detail.body);
    expect(detail.attempts_made[0]!.request_headers['webhook-signature']).toMatch(/^v1,/);
  });

  it('retries a 500 with the same webhook-id until a 200, honouring Retry-After on a 429', async () => {
    receiver.received.length = 0;
    receiver.answer = (_request, index) =>
      index === 0 ? { status: 500, body: 'boom' } : index === 1 ? { status: 429, headers: { 'retry-after': '1' } } : { status: 204 };
    const project = await createProject(ctx.app, ctx.adminToken);
    const hook = await createHook(ctx.app, ctx.adminToken, project, { url: receiver.url, events: ['project.updated'] });
    await injectAs(ctx.app, ctx.adminToken, { method: 'PATCH', url: `/projects/${project}`, payload: { default_branch: 'develop' } });
    const received = await receiver.waitFor(3);
    expect(new Set(received.map((one) => one.headers['webhook-id'])).size).toBe(1);
    for (const one of received) expect(verifyWith(hook.secret, one).type).toBe('project.updated');
    // The 429 asked for a second: the next attempt waited at least that (backoff alone would be ~0.1 s).
    expect(received[2]!.at - received[1]!.at).toBeGreaterThanOrEqual(900);
    const [delivery] = (
      await until(
        () => get(`/projects/${project}/hooks/${hook.id}/deliveries`).then((response) => response.json<{ items: { id: number; attempts: number; status: string }[] }>()),
        (page) => page.items[0]?.status === 'succeeded',
      )
    ).items;
    expect(delivery).toMatchObject({ attempts: 3, status: 'succeeded' });
    const detail = (await get(`/projects/${project}/hooks/${hook.id}/deliveries/${delivery!.id}`)).json<{ attempts_made: { response_status: number; response_body: string }[] }>();
    expect(detail.attempts_made.map((attempt) => attempt.response_status)).toEqual([500, 429, 204]);
    expect(detail.attempts_made[0]!.response_body).toBe('boom');
  });

  it('does not retry a 4xx (other than 429) or a redirect, and redelivers on demand with the same webhook-id', async () => {
    receiver.received.length = 0;
    receiver.answer = (_request, index) => (index === 0 ? { status: 302, headers: { location: 'http://127.0.0.1:9/' } } : { status: 200 });
    const project = await createProject(ctx.app, ctx.adminToken);
    const hook = await createHook(ctx.app, ctx.adminToken, project, { url: receiver.url, events: ['*'] });
    const ping = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: `/projects/${project}/hooks/${hook.id}/ping` });
    expect(ping.statusCode, ping.body).toBe(202);
    const id = ping.json<{ id: number }>().id;
    const path = `/projects/${project}/hooks/${hook.id}/deliveries/${id}`;
    const failed = await until(() => get(path).then((response) => response.json<{ status: string; attempts: number }>()), (delivery) => delivery.status === 'failed');
    expect(failed.attempts).toBe(1);
    expect(receiver.received).toHaveLength(1);
    expect(verifyWith(hook.secret, receiver.received[0]!).type).toBe('ping');

    const again = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: `${path}/redeliver` });
    expect(again.statusCode, again.body).toBe(202);
    await until(() => get(path).then((response) => response.json<{ status: string }>()), (delivery) => delivery.status === 'succeeded');
    expect(receiver.received[1]!.headers['webhook-id']).toBe(receiver.received[0]!.headers['webhook-id']);
    const missing = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: `/projects/${project}/hooks/${hook.id}/deliveries/2147483000/redeliver` });
    expect(missing.statusCode).toBe(404);
  });

  it('disables a hook after 20 failed attempts in a row, says why, logs hook.disabled, and PATCH active:true enables it again', async () => {
    receiver.received.length = 0;
    // 410: not worth a retry, so each delivery fails at its first attempt and the run of failures grows by one each.
    receiver.answer = () => ({ status: 410 });
    const project = await createProject(ctx.app, ctx.adminToken);
    const hook = await createHook(ctx.app, ctx.adminToken, project, { url: receiver.url, events: ['*'] });
    const path = `/projects/${project}/hooks/${hook.id}`;
    for (let index = 0; index < 21; index++) {
      expect((await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: `${path}/ping` })).statusCode).toBe(202);
    }
    const disabled = await until(
      () => get(path).then((response) => response.json<{ active: boolean; disabled_reason: string | null; consecutive_failures: number }>()),
      (current) => !current.active,
    );
    expect(disabled.consecutive_failures).toBe(20);
    expect(disabled.disabled_reason).toMatch(/20 failed attempts in a row; the last: HTTP 410/);
    expect(receiver.received).toHaveLength(20);
    const events = await until(
      () => get(`/events?project_id=${project}&type=hook.`).then((response) => response.json<{ items: { type: string; data: Record<string, unknown> }[] }>()),
      (page) => page.items.length > 0,
    );
    expect(events.items).toHaveLength(1);
    expect(events.items[0]).toMatchObject({ type: 'hook.disabled', data: { id: hook.id, active: false } });
    expect(JSON.stringify(events.items[0])).not.toContain(receiver.url);
    // Disabled: the 21st ping stays pending, nothing more goes out.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(receiver.received).toHaveLength(20);

    receiver.answer = () => ({ status: 200 });
    const enabled = await injectAs(ctx.app, ctx.adminToken, { method: 'PATCH', url: path, payload: { active: true } });
    expect(enabled.json()).toMatchObject({ active: true, disabled_reason: null, consecutive_failures: 0 });
    // The pending ping goes out (and, if the hook is active again when its event fans out, its own hook.disabled).
    const pings = () => receiver.received.filter((one) => verifyWith(hook.secret, one).type === 'ping').length;
    expect(await until(async () => pings(), (count) => count === 21)).toBe(21);
  });

  it('signs with both secrets for 24 hours after a rotation', async () => {
    receiver.received.length = 0;
    receiver.answer = () => ({ status: 200 });
    const project = await createProject(ctx.app, ctx.adminToken);
    const hook = await createHook(ctx.app, ctx.adminToken, project, { url: receiver.url, events: ['*'] });
    const path = `/projects/${project}/hooks/${hook.id}`;
    const rotated = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: `${path}/rotate-secret` });
    expect(rotated.statusCode, rotated.body).toBe(200);
    const { secret, previous_secret_expires_at: until24h } = rotated.json<{ secret: string; previous_secret_expires_at: string }>();
    expect(secret).not.toBe(hook.secret);
    expect(Date.parse(until24h) - Date.now()).toBeGreaterThan(23.9 * 3600 * 1000);
    await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: `${path}/ping` });
    const [received] = await receiver.waitFor(1);
    expect(String(received!.headers['webhook-signature']).split(' ')).toHaveLength(2);
    expect(verifyWith(secret, received!).type).toBe('ping');
    expect(verifyWith(hook.secret, received!).type).toBe('ping');

    // Once the overlap is over (moved into the past here rather than waited for), the old secret signs no more.
    const { hooks } = ctx.app.database.tables;
    await ctx.app.database.db.update(hooks).set({ previous_secret_expires_at: new Date(Date.now() - 1000) }).where(eq(hooks.id, hook.id));
    await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: `${path}/ping` });
    const [, after] = await receiver.waitFor(2);
    expect(String(after!.headers['webhook-signature']).split(' ')).toHaveLength(1);
    expect(verifyWith(secret, after!).type).toBe('ping');
    expect(() => verifyWith(hook.secret, after!)).toThrow();
  });

  it('purges finished deliveries with the events past EVENTS_RETENTION_DAYS, and keeps the ones still to send', async () => {
    receiver.received.length = 0;
    receiver.answer = () => ({ status: 200 });
    const project = await createProject(ctx.app, ctx.adminToken);
    const sent = await createHook(ctx.app, ctx.adminToken, project, { url: receiver.url, events: ['*'] });
    const waiting = await createHook(ctx.app, ctx.adminToken, project, { url: receiver.url, events: ['*'], active: false });
    for (const hook of [sent, waiting]) {
      expect((await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: `/projects/${project}/hooks/${hook.id}/ping` })).statusCode).toBe(202);
    }
    const deliveries = (hook: { id: number }) =>
      get(`/projects/${project}/hooks/${hook.id}/deliveries`).then((response) => response.json<{ items: { status: string }[]; total: number }>());
    await until(() => deliveries(sent), (page) => page.items[0]?.status === 'succeeded');

    expect(await ctx.app.eventLog.purge(new Date(Date.now() + 8 * 86_400_000))).toBeGreaterThan(0);
    expect((await deliveries(sent)).total).toBe(0);
    expect((await deliveries(waiting)).items.map((item) => item.status)).toEqual(['pending']);
  });

  it('validates hooks: event patterns, URL schemes and credentials (400 with paths), 404s, and cascades with its project', async () => {
    const project = await createProject(ctx.app, ctx.adminToken);
    const bad = await injectAs(ctx.app, ctx.adminToken, {
      method: 'POST',
      url: `/projects/${project}/hooks`,
      payload: { url: 'ftp://127.0.0.1/x', events: ['build.*', 'builds.*', 'job.exploded'] },
    });
    expect(bad.statusCode).toBe(400);
    expect(problemOf(bad).errors?.map((error) => error.path).sort()).toEqual(['/body/events/1', '/body/events/2', '/body/url']);
    const credentials = await injectAs(ctx.app, ctx.adminToken, {
      method: 'POST',
      url: `/projects/${project}/hooks`,
      payload: { url: 'http://user:pw@127.0.0.1/x', events: ['*'] },
    });
    expect(problemOf(credentials).errors?.[0]?.message).toMatch(/credentials/);
    const noProject = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: '/projects/2147483000/hooks', payload: { url: receiver.url, events: ['*'] } });
    expect(noProject.statusCode).toBe(404);
    expect((await get('/projects/2147483000/hooks')).statusCode).toBe(404);
    const hook = await createHook(ctx.app, ctx.adminToken, project, { url: receiver.url, events: ['*'] });
    expect((await get(`/projects/${project + 1000000}/hooks/${hook.id}`)).statusCode).toBe(404);
    expect((await injectAs(ctx.app, ctx.adminToken, { method: 'DELETE', url: `/projects/${project}` })).statusCode).toBe(204);
    expect((await get(`/projects/${project}/hooks/${hook.id}`)).statusCode).toBe(404);
  });
});

describe(`webhooks' SSRF guard (${testDb})`, () => {
  const ctx = useTestApp({ WEBHOOK_CONCURRENCY: '0' });

  it.each([
    ['http://127.0.0.1:8080/x', /loopback/],
    ['http://[::1]/x', /loopback/],
    ['http://10.1.2.3/x', /private/],
    ['http://169.254.169.254/latest/meta-data', /cloud metadata/],
    ['http://[::ffff:127.0.0.1]/x', /127\.0\.0\.1/],
    ['http://2130706433/x', /loopback/],
    ['http://0177.0.0.1/x', /loopback/],
    ['http://localhost/x', /loopback/],
    ['http://no-such-host.invalid/x', /does not resolve/],
  ])('refuses %s with a 400 naming why', async (url, why) => {
    const project = await createProject(ctx.app, ctx.adminToken);
    const response = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: `/projects/${project}/hooks`, payload: { url, events: ['*'] } });
    expect(response.statusCode, response.body).toBe(400);
    expect(problemOf(response).errors?.[0]).toMatchObject({ path: '/body/url' });
    expect(problemOf(response).errors?.[0]?.message).toMatch(why);
  });
});

describe(`webhooks across a restart (${testDb})`, () => {
  let scratch: PersistentDatabase;
  const receiver = new Receiver();
  beforeAll(async () => {
    scratch = await createPersistentDatabase();
    await receiver.start();
  });
  afterAll(async () => {
    await receiver.stop();
    await scratch?.drop();
  });

  it('keeps deliveries made while no worker ran, and sends them once a process with workers starts', async () => {
    const env = { WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true', BUILD_CONCURRENCY: '0' };
    const apiOnly = await createServer(testConfig(scratch.url, { ...env, WEBHOOK_CONCURRENCY: '0' }), { logger: false });
    await apiOnly.ready();
    const token = (await apiOnly.inject({ method: 'POST', url: '/login', payload: { username: 'admin', password: 'admin123' } })).json<{ access_token: string }>().access_token;
    const project = await createProject(apiOnly, token);
    const hook = await createHook(apiOnly, token, project, { url: receiver.url, events: ['project.*'] });
    for (let index = 0; index < 3; index++) {
      await injectAs(apiOnly, token, { method: 'PATCH', url: `/projects/${project}`, payload: { default_branch: `b${index}` } });
    }
    await apiOnly.close();
    expect(receiver.received).toHaveLength(0);

    const worker = await createServer(testConfig(scratch.url, env), { logger: false });
    await worker.ready();
    try {
      const received = await receiver.waitFor(3);
      const branches = received.map((one) => (verifyWith(hook.secret, one).data as { default_branch: string }).default_branch);
      expect(branches).toEqual(['b0', 'b1', 'b2']);
    } finally {
      await worker.close();
    }
  });
});
