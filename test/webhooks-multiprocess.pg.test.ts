/**
 * Events and webhooks across real processes (PostgreSQL only): three servers share one database. Webhook deliveries
 * are rows any replica's workers claim; one replica is SIGKILLed while a delivery it sent is still open on the
 * receiver, and the survivors must deliver every event of the project at least once (the cut one again, with the same
 * webhook-id, once its lease expired), leaving no delivery lost or stuck. Then a live event stream opened on one
 * replica and resumed with Last-Event-ID on another must miss nothing and repeat nothing.
 */
import { createServer as createHttpServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { components } from '../clients/typescript/usine.js';
import { createScratchDatabase, testDb, uniqueName, type ScratchDatabase } from './helper.js';
import { verifyWith, type WebhookPayload as Payload } from './webhook-verify.js';
import {
  apiClient,
  describeServers,
  killServer,
  loginAdmin,
  startServers,
  stopServer,
  type ApiClient,
  type ServerProcess,
} from './processes.js';
import { openEventStream, type SseEventItem } from './sse-client.js';

const SERVERS = 3;
/**
 * Hooks on the project, all wanting every event. One delivery of a hook is in flight at a time, and a replica that has
 * just finished one of a hook's deliveries claims its next at once: with fewer hooks than the other replicas' workers,
 * they can keep every hook busy and the victim never sends anything.
 */
const HOOKS = 6;
const WEBHOOK_TIMEOUT_S = 1;
/** src/webhooks/delivery-workers.ts's leaseMsFor: a killed replica's delivery is sent again once this has passed. */
const LEASE_MS = 2 * WEBHOOK_TIMEOUT_S * 1000 + 2000;
/** Kill once the receiver has seen this many requests (and the victim has one open on it). */
const KILL_AFTER_RECEIVED = 20;
const KILL_WAIT_MS = 45_000;
const DRAIN_TIMEOUT_MS = 120_000;
/** The receiver answers each request after a delay drawn in this range: requests stay open, replicas overlap. */
const ANSWER_DELAY_MS: [number, number] = [100, 200];

/** Two stages; the three test copies start together once the compile succeeded (skipped when it failed). */
const PIPELINE = {
  stages: ['build', 'test'],
  jobs: {
    compile: { stage: 'build', duration_s: [2, 4], fail_rate: 0.2 },
    unit: { stage: 'test', parallel: 3, duration_s: [2, 6], fail_rate: 0.3 },
  },
};

type EventJson = components['schemas']['Event'];
interface EventPage {
  items: EventJson[];
  next_after: number | null;
}
type DeliveryJson = components['schemas']['Delivery'];
interface DeliveryPage {
  items: DeliveryJson[];
  total: number;
}
interface Received {
  /** Which of the test's hooks it was sent to: the path says (`/hook/<index>`). */
  hook: number;
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const TERMINAL = new Set(['success', 'fail', 'canceled']);

/**
 * A receiver on loopback for every hook (`/hook/<index>`): records each request, answers 200 after a short delay, and
 * knows which requests are still open (received, not yet answered, their connection alive). `hold` keeps one from
 * ever being answered: the replica that sent it is about to die with it in flight.
 */
class Receiver {
  readonly received: Received[] = [];
  /** Open requests and their webhook-id. */
  readonly open = new Map<ServerResponse, string>();
  readonly #held = new Set<ServerResponse>();
  #server: Server | undefined;
  url = '';

  async start(): Promise<void> {
    this.#server = createHttpServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const hook = Number(/^\/hook\/(\d+)$/.exec(request.url ?? '')?.[1] ?? -1);
        this.received.push({ hook, headers: request.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() });
        this.open.set(response, String(request.headers['webhook-id']));
        // 'close' also follows a normal end: the map holds only what is unanswered and still connected.
        response.once('close', () => this.open.delete(response));
        const [min, max] = ANSWER_DELAY_MS;
        setTimeout(() => {
          if (this.#held.has(response) || response.destroyed) return;
          response.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
        }, min + Math.random() * (max - min));
      });
    });
    await new Promise<void>((resolve) => this.#server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.#server!.address() as AddressInfo).port}`;
  }

  hold(response: ServerResponse): void {
    this.#held.add(response);
  }

  async stop(): Promise<void> {
    // Held requests would keep close() waiting: cut every connection.
    this.#server?.closeAllConnections();
    await new Promise((resolve) => this.#server?.close(resolve));
  }
}

/** Every event of a project after `after`, oldest first, paging with next_after. */
async function eventsAfter(client: ApiClient, projectId: number, after: number): Promise<EventJson[]> {
  const events: EventJson[] = [];
  let cursor = after;
  for (;;) {
    const page = await client.expect<EventPage>(200, 'GET', `/events?project_id=${projectId}&after=${cursor}&per_page=100`);
    events.push(...page.items);
    if (page.items.length < 100) return events;
    cursor = page.next_after!;
  }
}

/** The id of a project's newest event, once its log holds `types` (its setup, sequenced and visible). */
async function settledHead(client: ApiClient, projectId: number, types: string[]): Promise<number> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const events = await eventsAfter(client, projectId, 0);
    if (JSON.stringify(events.map((event) => event.type)) === JSON.stringify(types)) return events.at(-1)!.id;
    if (Date.now() > deadline) {
      throw new Error(`project ${projectId}'s log is ${JSON.stringify(events.map((event) => event.type))}, not ${JSON.stringify(types)}`);
    }
    await sleep(50);
  }
}

async function allDeliveries(client: ApiClient, projectId: number, hookId: number): Promise<DeliveryJson[]> {
  const deliveries: DeliveryJson[] = [];
  for (let page = 1; ; page++) {
    const path = `/projects/${projectId}/hooks/${hookId}/deliveries?per_page=100&page=${page}`;
    const body = await client.expect<DeliveryPage>(200, 'GET', path);
    deliveries.push(...body.items);
    if (body.items.length < 100 || deliveries.length >= body.total) return deliveries;
  }
}

/** A project with PIPELINE, made through `client`. */
async function createProject(client: ApiClient, prefix: string): Promise<number> {
  const body = { name: uniqueName(prefix), repo: `https://github.com/demo/${prefix}` };
  const project = await client.expect<{ id: number }>(201, 'POST', '/projects', body);
  await client.expect(200, 'PUT', `/projects/${project.id}/pipeline`, PIPELINE);
  return project.id;
}

const triggerBuild = async (client: ApiClient, projectId: number): Promise<number> =>
  (await client.expect<{ id: number }>(201, 'POST', `/projects/${projectId}/builds`)).id;

async function waitForBuilds(client: ApiClient, ids: number[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const id of ids) {
    for (;;) {
      const build = await client.expect<{ status: string; logs: string }>(200, 'GET', `/builds/${id}`);
      if (TERMINAL.has(build.status)) break;
      if (Date.now() > deadline) throw new Error(`build ${id} still ${build.status}:\n${build.logs}`);
      await sleep(100);
    }
  }
}

describe.skipIf(testDb !== 'pg')('events and webhooks across three server processes on one PostgreSQL database', () => {
  let scratch: ScratchDatabase | undefined;
  let servers: ServerProcess[] = [];
  let clients: ApiClient[] = [];
  let token = '';
  let sql: postgres.Sql | undefined;
  const receiver = new Receiver();
  const diagnostics = () => describeServers(servers).slice(-16_000);

  beforeAll(async () => {
    scratch = await createScratchDatabase('pg');
    await receiver.start();
    servers = await startServers(
      SERVERS,
      {
        DATABASE_URL: scratch.url,
        DATABASE_POOL_MAX: '5',
        BUILD_CONCURRENCY: '2',
        BUILD_TIME_SCALE: '0.1',
        BUILD_LEASE_S: '2',
        BUILD_FAIL_RATE: '0.5',
        BUILD_MAX_ATTEMPTS: '5',
        BUILD_DRAIN_S: '1',
        WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
        WEBHOOK_TIMEOUT_S: String(WEBHOOK_TIMEOUT_S),
        WEBHOOK_RETRY_BASE_S: '0.1',
        WEBHOOK_CONCURRENCY: '2',
        SSE_KEEPALIVE_S: '1',
      },
      'usine-hooks',
      // The whole suite may be running beside this file on a small machine: three cold `tsx` starts take a while.
      90_000,
    );
    token = await loginAdmin(servers[0]!.url);
    clients = servers.map((server) => apiClient(server.url, token));
    sql = postgres(scratch.url, { max: 2, onnotice: () => {} });
  }, 120_000);

  afterAll(async () => {
    await sql?.end({ timeout: 2 });
    await Promise.all(servers.map((server) => stopServer(server, 5000)));
    await receiver.stop();
    await scratch?.drop();
  });

  it('delivers every event at least once with the same webhook-id after a replica is SIGKILLed mid-delivery', async () => {
    const db = sql!;
    const [front] = clients;
    const projectId = await createProject(front!, 'hooks-mp');
    // What the project logged before its hooks existed; a hook receives only what happened once it existed.
    const before = await settledHead(front!, projectId, ['project.created', 'project.updated']);
    const hooks: { id: number; secret: string }[] = [];
    for (let index = 0; index < HOOKS; index++) {
      // Each through another replica: a hook is a row, whichever replica made it.
      const client = clients[index % SERVERS]!;
      const body = { url: `${receiver.url}/hook/${index}`, events: ['*'] };
      hooks.push(await client.expect<{ id: number; secret: string }>(201, 'POST', `/projects/${projectId}/hooks`, body));
    }

    const builds = await Promise.all(clients.map((client) => triggerBuild(client, projectId)));

    // Kill the last replica while one of its deliveries is open on the receiver: that request is then held (never
    // answered), so the victim cannot have recorded it, and its row stays `delivering` under the victim's lease.
    const victim = servers[SERVERS - 1]!;
    const victimOwner = `%:${victim.pid}:%/hooks`;
    const killDeadline = Date.now() + KILL_WAIT_MS;
    let cut: { messageId: string; leaseExpiresAt: number } | undefined;
    while (!cut) {
      const rows = await db<{ message_id: string; lease_expires_at: Date }[]>`
        select message_id, lease_expires_at from deliveries where status = 'delivering' and lease_owner like ${victimOwner}`;
      if (receiver.received.length >= KILL_AFTER_RECEIVED) {
        for (const [response, messageId] of receiver.open) {
          const row = rows.find((one) => one.message_id === messageId);
          if (!row) continue;
          receiver.hold(response);
          victim.child.kill('SIGKILL');
          cut = { messageId, leaseExpiresAt: row.lease_expires_at.getTime() };
          break;
        }
      }
      if (cut) break;
      if (Date.now() > killDeadline) {
        const seen = receiver.received.length;
        throw new Error(`never saw the victim (pid ${victim.pid}) with a delivery open on the receiver (${seen} seen)\n${diagnostics()}`);
      }
      await sleep(10);
    }
    const killedAt = Date.now();
    expect((await killServer(victim)).signal).toBe('SIGKILL');
    const receivedAtKill = receiver.received.length;

    // More builds through the survivors: the fan-out carries on whoever held it when the victim died.
    builds.push(...(await Promise.all(clients.slice(0, SERVERS - 1).map((client) => triggerBuild(client, projectId)))));
    const observer = clients[1]!;
    await waitForBuilds(observer, builds, 60_000).catch((error: unknown) => {
      throw new Error(`${String(error)}\n${diagnostics()}`);
    });

    // Wait (bounded) until every hook has a delivery per event logged after the hooks existed, each one over (the
    // checks below say whether it was the right ones and whether they all succeeded).
    let events: EventJson[] = [];
    let perHook: DeliveryJson[][];
    const drainDeadline = Date.now() + DRAIN_TIMEOUT_MS;
    for (;;) {
      events = await eventsAfter(observer, projectId, before);
      perHook = await Promise.all(hooks.map((hook) => allDeliveries(observer, projectId, hook.id)));
      const over = (delivery: DeliveryJson) => delivery.status === 'succeeded' || delivery.status === 'failed';
      const settled = perHook.every((list) => list.length >= events.length && list.every(over));
      if (settled) break;
      if (Date.now() > drainDeadline) {
        const states = perHook.map((list, index) => {
          const counts = new Map<string, number>();
          for (const delivery of list) counts.set(delivery.status, (counts.get(delivery.status) ?? 0) + 1);
          return `hook ${hooks[index]!.id}: ${list.length} deliveries ${JSON.stringify(Object.fromEntries(counts))}`;
        });
        const summary = `${events.length} events:\n${states.join('\n')}`;
        throw new Error(`deliveries not over ${DRAIN_TIMEOUT_MS} ms after the builds ended (${summary}\n${diagnostics()}`);
      }
      await sleep(250);
    }
    // Every delivery is over, but the receiver may still be reading the last answer's request: let it finish.
    await sleep(500);

    const problems: string[] = [];
    const eventIds = events.map((event) => event.id);
    expect(events.length, 'the builds logged events').toBeGreaterThan(builds.length * 5);
    expect(events.filter((event) => event.type.startsWith('job.')).length).toBeGreaterThan(builds.length * 3);

    // Per hook: one delivery per event after its creation (each event fanned out exactly once, whichever replica did
    // it, the dead one included), every one succeeded, and every event arrived, signed, as the log has it.
    const byMessage = new Map<string, { hook: number; event: EventJson; delivery: DeliveryJson }>();
    for (const [index, hook] of hooks.entries()) {
      const deliveries = perHook[index]!;
      const delivered = deliveries.map((delivery) => delivery.event_id ?? 0).sort((a, b) => a - b);
      if (new Set(delivered).size !== delivered.length) problems.push(`hook ${hook.id}: an event fanned out twice`);
      if (JSON.stringify(delivered) !== JSON.stringify(eventIds)) {
        problems.push(`hook ${hook.id}: deliveries carry events ${JSON.stringify(delivered)}, the log has ${JSON.stringify(eventIds)}`);
      }
      for (const delivery of deliveries.filter((one) => one.status !== 'succeeded')) {
        problems.push(`hook ${hook.id}: delivery ${delivery.id} of event ${delivery.event_id} ${delivery.status}`);
      }
      for (const delivery of deliveries) {
        const event = events.find((one) => one.id === delivery.event_id);
        if (event) byMessage.set(delivery.message_id, { hook: index, event, delivery });
      }
    }
    const copies = new Map<string, Received[]>();
    for (const received of receiver.received) {
      const messageId = String(received.headers['webhook-id']);
      copies.set(messageId, [...(copies.get(messageId) ?? []), received]);
      const known = byMessage.get(messageId);
      if (!known || known.hook !== received.hook) {
        problems.push(`received ${messageId} on hook ${received.hook}: no delivery of that hook has that webhook-id`);
        continue;
      }
      let payload: Payload;
      try {
        payload = verifyWith(hooks[received.hook]!.secret, received);
      } catch (error) {
        problems.push(`received ${messageId} on hook ${received.hook}: does not verify: ${String(error)}`);
        continue;
      }
      const { event } = known;
      if (payload.type !== event.type || received.headers['usine-event'] !== event.type) {
        problems.push(`${messageId}: type ${payload.type}, the log says ${event.type}`);
      }
      if (payload.timestamp !== event.created_at) {
        problems.push(`${messageId}: timestamp ${payload.timestamp}, the log says ${event.created_at}`);
      }
      if (JSON.stringify(payload.data) !== JSON.stringify(event.data)) {
        problems.push(`${messageId}: data ${JSON.stringify(payload.data)}, the log says ${JSON.stringify(event.data)}`);
      }
    }
    for (const [messageId, { hook, event }] of byMessage) {
      if (!copies.has(messageId)) problems.push(`event ${event.id} (${event.type}) never reached hook ${hooks[hook]!.id} (${messageId})`);
    }
    // A duplicate is recognisable: every copy of an event sent to a hook carries the same webhook-id and body.
    const byEvent = new Map<string, Set<string>>();
    for (const [messageId, list] of copies) {
      if (new Set(list.map((one) => one.body)).size !== 1) problems.push(`${messageId}: copies with different bodies`);
      const key = `${list[0]!.hook}|${list[0]!.body}`;
      byEvent.set(key, new Set([...(byEvent.get(key) ?? []), messageId]));
    }
    for (const [key, ids] of byEvent) {
      if (ids.size > 1) problems.push(`one event reached a hook under ${ids.size} webhook-ids: ${key.slice(0, 200)}`);
    }
    expect(problems, `${problems.slice(0, 15).join('\n')}\n${diagnostics()}`).toEqual([]);

    // The delivery cut by the kill went out again with the same webhook-id, once its lease expired, and succeeded.
    const cutCopies = copies.get(cut.messageId) ?? [];
    expect(cutCopies.length, `copies of ${cut.messageId}`).toBeGreaterThanOrEqual(2);
    const resent = cutCopies.filter((one) => one.at >= killedAt);
    expect(resent.length, `copies of ${cut.messageId} sent after the kill`).toBeGreaterThanOrEqual(1);
    const resentAt = resent[0]!.at;
    // The database's clock is this machine's: a lease is not taken over before it expires (a little slack for rounding).
    expect(resentAt).toBeGreaterThanOrEqual(cut.leaseExpiresAt - 100);
    const cutDelivery = byMessage.get(cut.messageId)!.delivery;
    expect(cutDelivery.status).toBe('succeeded');
    expect(cutDelivery.attempts).toBeGreaterThanOrEqual(2);

    const duplicates = [...copies.values()].reduce((sum, list) => sum + list.length - 1, 0);
    // Order holds across the take-over: the hook waited while its delivery was in flight with the dead replica, and
    // the delivery went back to the queue where it was, before the hook's later events (its receiver never failed).
    const cutHook = perHook[byMessage.get(cut.messageId)!.hook]!;
    const later = cutHook.filter((delivery) => delivery.event_id! > cutDelivery.event_id!);
    const overtook = later.filter((delivery) => Date.parse(delivery.last_attempt_at!) < Date.parse(cutDelivery.last_attempt_at!)).length;
    console.log(
      `webhooks across replicas: ${events.length} events × ${HOOKS} hooks = ${perHook.flat().length} deliveries, ` +
        `${receiver.received.length} requests received (${receivedAtKill} before the kill), ` +
        `${duplicates} duplicate(s) (same webhook-id); ` +
        `the cut delivery was sent again ${resentAt - killedAt} ms after the kill (lease ${LEASE_MS} ms), ` +
        `after ${overtook} of the ${later.length} later events of its hook`,
    );
    expect(overtook, 'later events of its hook delivered before the cut delivery went out again').toBe(0);
  }, 240_000);

  it('resumes a live event stream on another replica with Last-Event-ID: nothing missed, nothing repeated, in order', async () => {
    const live = servers.filter((server) => server.alive());
    expect(live.length).toBeGreaterThanOrEqual(2);
    const [first, second] = [live[0]!, live[1]!];
    const [one, other] = [apiClient(first.url, token), apiClient(second.url, token)];
    const auth = { authorization: `Bearer ${token}` };
    const projectId = await createProject(one, 'events-mp');
    // Opened once the setup is logged and visible: the stream starts at the head of the log, after it.
    const start = await settledHead(other, projectId, ['project.created', 'project.updated']);
    const url = (server: ServerProcess) => `${server.url}/events?project_id=${projectId}`;

    const stream = await openEventStream(url(first), auth, { transport: 'http' });
    expect(stream.response.status).toBe(200);
    expect(stream.response.headers.get('content-type')).toBe('text/event-stream');
    const builds = await Promise.all([triggerBuild(one, projectId), triggerBuild(other, projectId)]);
    // Cut while the builds run: some events seen, more on their way.
    await stream.waitFor((item) => item.kind === 'event' && stream.events().length >= 8, 30_000);
    stream.abort();
    await stream.waitClosed();
    const seen = stream.events();
    const lastSeen = seen.at(-1)!.id!;

    // More while no one listens, then a reconnect to the other replica from the last id received.
    builds.push(...(await Promise.all([triggerBuild(other, projectId), triggerBuild(one, projectId)])));
    const missedDeadline = Date.now() + 15_000;
    while ((await eventsAfter(other, projectId, Number(lastSeen))).length === 0) {
      if (Date.now() > missedDeadline) throw new Error(`nothing logged after ${lastSeen}\n${diagnostics()}`);
      await sleep(50);
    }
    const resumed = await openEventStream(url(second), { ...auth, 'last-event-id': lastSeen }, { transport: 'http' });
    expect(resumed.response.status).toBe(200);
    try {
      await waitForBuilds(other, builds, 60_000);
      // The log is final once every build ended and a read of it no longer grows.
      let logged = await eventsAfter(other, projectId, start);
      for (;;) {
        await sleep(1000);
        const again = await eventsAfter(other, projectId, start);
        if (again.length === logged.length) break;
        logged = again;
      }
      const newest = String(logged.at(-1)!.id);
      await resumed.waitFor((item) => item.kind === 'event' && item.id === newest, 15_000);
      // Anything after the newest would be a repeat or an invention: give it a moment to show up.
      await sleep(500);

      const streamed: SseEventItem[] = [...seen, ...resumed.events()];
      expect(seen.length).toBeGreaterThanOrEqual(8);
      expect(resumed.events().length).toBeGreaterThan(0);
      expect(streamed.map((item) => Number(item.id))).toEqual(logged.map((event) => event.id));
      const payloads = streamed.map((item) => JSON.parse(item.data) as EventJson);
      expect(payloads).toEqual(logged);
      expect(streamed.map((item) => item.event)).toEqual(logged.map((event) => event.type));
      const finished = payloads.filter((event) => /^build\.(succeeded|failed)$/.test(event.type)).map((event) => event.build_id);
      expect(new Set(finished)).toEqual(new Set(builds));
    } finally {
      resumed.abort();
    }
  }, 180_000);
});
