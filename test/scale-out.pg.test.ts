/**
 * Scale-out and rolling restarts (PostgreSQL only): three server processes share one database behind a small
 * round-robin balancer on loopback. A mixed workload (logins, project creation, build triggers, listings, live log
 * streams) runs all along while the processes are replaced one after another: SIGTERM, wait for exit code 0, start a
 * replacement on a new port, wait until it is ready, next.
 *
 * What the balancer does, as a real one would: it probes every process's `GET /health/ready` every PROBE_EVERY_MS and
 * routes requests only to processes whose last probe answered 200 (a probe that fails or takes over 1 s counts as not
 * ready). It records, per process, since when it has seen it not ready. The processes get SHUTDOWN_DELAY_MS: after
 * SIGTERM they answer readiness 503 but still serve requests for that long, so the balancer stops routing to them
 * before they stop taking requests.
 *
 * What the test allows, exactly (anything else is a failure, listed with its timings):
 * - A 503 only from a process the balancer had already seen not ready when the request was sent. The balancer never
 *   routes there after that moment, so in practice this admits nothing: the test demands that no request fails.
 * - A connection error (refused, reset, closed) only from a process the balancer sees not ready when the error comes
 *   back, and only for requests that are safe to send again: logins and reads, build triggers (each carries
 *   an Idempotency-Key, so a resend answers the first build), project creation (unique names: a 409 on the resend means
 *   the first attempt created it, which is checked). Such a request is sent again to another process and counted.
 *   In-flight requests must finish on shutdown, so this too is expected to stay at 0: it is counted and printed.
 * - A live log stream cut by a process that shuts down, only with the `server shutting down` comment first; the
 *   client resumes on another process with Last-Event-ID, and the reassembled log must equal the build's final log.
 *
 * At the end: every triggered build (half of the projects run the default pipeline, half a graph of parallel jobs)
 * is success|fail once the queue has drained, with one `Build finished:` line; every job that ran completed exactly
 * once (one job-finished line, right after its last pick-up); jobs handed back at shutdown carry the release line of
 * a process that was stopped and were finished by another one; the project total and every project's build total
 * equal what the client created.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createScratchDatabase, testDb, uniqueName, type ScratchDatabase } from './helper.js';
import { describeServers, loginAdmin, queueFigures, startServer, startServers, stopServer, type Exit, type ServerProcess } from './processes.js';
import { openEventStream } from './sse-client.js';
import { eventsByJob, logEvents, pidOf } from './build-log-events.js';

const SERVERS = 3;
const PROBE_EVERY_MS = 100;
const SHUTDOWN_DELAY_MS = 1500;
const TIME_SCALE = 0.25;
/** Small, so that builds still running when their process stops are handed back (runs last 0.5–2.5 s here). */
const DRAIN_S = 0.5;
/** Builds triggered just before each SIGTERM, so that every worker of the process being stopped is busy. */
const BURST = 12;
/** Streams opened on each process just before it is stopped. */
const PINNED_STREAMS = 4;
const SHUTDOWN_COMMENT = 'server shutting down: reconnect to resume';
const QUEUE_DRAIN_TIMEOUT_MS = 60_000;
/** Three processes compiling TypeScript at once on a loaded 2-core box can take a while to be ready. */
const READY_TIMEOUT_MS = 60_000;

const SERVER_ENV = {
  BUILD_CONCURRENCY: '3',
  BUILD_TIME_SCALE: String(TIME_SCALE),
  BUILD_DRAIN_S: String(DRAIN_S),
  BUILD_LEASE_S: '5',
  BUILD_FAIL_RATE: '0.5',
  BUILD_QUEUE_LIMIT: '10000',
  SHUTDOWN_DELAY_MS: String(SHUTDOWN_DELAY_MS),
};

interface Build {
  id: number;
  project_id: number;
  number: number;
  status: string;
  logs: string;
}
interface Page<T> {
  items: T[];
  total: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));


/** One process behind the balancer. */
interface Backend {
  server: ServerProcess;
  /** The last probe answered 200. */
  ready: boolean;
  /** Since when the balancer has seen it not ready (a probe's non-200 answer, failure or time-out); unset while ready. */
  notReadySince?: number;
  /** When the balancer first saw it not ready after it had been ready: for the report. */
  notReadyAt?: number;
  /** When the test sent it SIGTERM. */
  signalledAt?: number;
  /** Taken out of the pool (exited): no more probes. */
  removed: boolean;
}

/** Errors of fetch that mean the connection was refused or lost, rather than an answer. */
function connectionErrorCode(error: unknown): string | undefined {
  const cause = (error as { cause?: { code?: string } } | undefined)?.cause;
  const code = cause?.code;
  return code && ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED'].includes(code) ? code : undefined;
}

/** A round-robin balancer that routes only to processes whose readiness probe answered 200. */
class Balancer {
  readonly backends: Backend[] = [];
  private turn = 0;
  private readonly probes: Promise<void>[] = [];

  add(server: ServerProcess): Backend {
    const backend: Backend = { server, ready: false, removed: false };
    this.backends.push(backend);
    this.probes.push(this.probe(backend));
    return backend;
  }

  private async probe(backend: Backend): Promise<void> {
    while (!backend.removed) {
      const ok = await fetch(`${backend.server.url}/health/ready`, { signal: AbortSignal.timeout(1000) }).then(
        async (response) => {
          await response.arrayBuffer();
          return response.status === 200;
        },
        () => false,
      );
      if (backend.removed) break;
      if (!ok && backend.ready) {
        backend.notReadySince = Date.now();
        backend.notReadyAt ??= backend.notReadySince;
      }
      if (ok) backend.notReadySince = undefined;
      backend.ready = ok;
      await sleep(PROBE_EVERY_MS);
    }
  }

  /** The next ready backend in turn, other than `avoid`; waits (up to 15 s) while none is ready. */
  async pick(avoid?: Backend): Promise<Backend> {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const ready = this.backends.filter((backend) => backend.ready && !backend.removed && backend !== avoid);
      if (ready.length > 0) return ready[this.turn++ % ready.length]!;
      if (Date.now() > deadline) throw new Error('no ready backend for 15 s');
      await sleep(20);
    }
  }

  remove(backend: Backend): void {
    backend.removed = true;
    backend.ready = false;
    backend.notReadySince ??= Date.now();
  }

  async close(): Promise<void> {
    for (const backend of this.backends) this.remove(backend);
    await Promise.all(this.probes);
  }
}

describe.skipIf(testDb !== 'pg')('three processes on one PostgreSQL database, restarted one after another under load', () => {
  let scratch: ScratchDatabase | undefined;
  const servers: ServerProcess[] = [];
  const balancer = new Balancer();
  let t0 = Date.now();
  const diagnostics = () => describeServers(servers).slice(-24_000);
  const at = (time: number | undefined) => (time === undefined ? 'never' : `+${time - t0} ms`);

  beforeAll(async () => {
    scratch = await createScratchDatabase('pg');
    const first = await startServers(SERVERS, { DATABASE_URL: scratch.url, ...SERVER_ENV }, 'usine', READY_TIMEOUT_MS);
    servers.push(...first);
    t0 = Date.now();
    for (const server of first) balancer.add(server);
  }, 120_000);

  afterAll(async () => {
    await balancer.close();
    await Promise.all(servers.map((server) => stopServer(server, 5000)));
    await scratch?.drop();
  });

  it('serves a mixed workload without a failed request, a lost build or a build run twice', async () => {
    const token = await loginAdmin(servers[0]!.url);
    const failures: string[] = [];
    const counts = { requests: 0, accepted503: 0, resentAfterConnectionError: 0, streamCuts: 0, streamsFollowed: 0, logins: 0, listings: 0 };
    const resent: string[] = [];

    interface Answer {
      status: number;
      body: unknown;
      headers: Headers;
    }

    /**
     * One request through the balancer. Answers whatever the process answered, except for what the rules at the top
     * of this file allow: those are sent again to another process. Anything else disallowed is recorded as a failure
     * (and `undefined` returned).
     */
    async function call(method: string, path: string, options: { body?: unknown; headers?: Record<string, string> } = {}): Promise<Answer | undefined> {
      let avoid: Backend | undefined;
      for (let attempt = 1; attempt <= 5; attempt++) {
        const backend = await balancer.pick(avoid);
        const sentAt = Date.now();
        counts.requests++;
        const describe = (what: string) =>
          `${method} ${path} → ${backend.server.name} (port ${backend.server.port}) sent ${at(sentAt)}, ${what} at ${at(Date.now())}; ` +
          `SIGTERM ${at(backend.signalledAt)}, balancer saw not-ready ${at(backend.notReadyAt)}`;
        try {
          const headers: Record<string, string> = { authorization: `Bearer ${token}`, ...options.headers };
          if (options.body !== undefined) headers['content-type'] = 'application/json';
          const response = await fetch(`${backend.server.url}${path}`, {
            method,
            headers,
            body: options.body === undefined ? undefined : JSON.stringify(options.body),
            signal: AbortSignal.timeout(20_000),
          });
          const text = await response.text();
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            // not JSON: keep the text
          }
          if (response.status === 503) {
            if (backend.notReadySince !== undefined && backend.notReadySince <= sentAt) {
              counts.accepted503++;
              avoid = backend;
              continue;
            }
            failures.push(describe(`503 ${text}`));
            return undefined;
          }
          return { status: response.status, body, headers: response.headers };
        } catch (error) {
          const code = connectionErrorCode(error);
          if (code && backend.notReadySince !== undefined) {
            counts.resentAfterConnectionError++;
            resent.push(describe(code));
            avoid = backend;
            continue;
          }
          failures.push(describe(`${code ?? 'error'}: ${(error as Error).message} ${String((error as { cause?: unknown }).cause ?? '')}`));
          return undefined;
        }
      }
      failures.push(`${method} ${path}: still refused after 5 attempts`);
      return undefined;
    }

    /** `call`, expecting `status`; anything else is a failure. */
    async function expectCall<T>(status: number, method: string, path: string, options: Parameters<typeof call>[2] = {}): Promise<T | undefined> {
      const answer = await call(method, path, options);
      if (!answer) return undefined;
      if (answer.status !== status) {
        failures.push(`${method} ${path}: expected ${status}, got ${answer.status} ${JSON.stringify(answer.body)}`);
        return undefined;
      }
      return answer.body as T;
    }

    /** A graph: a job three others need, three parallel copies, one job with `needs: []`, a last stage after all. */
    const PIPELINE = {
      stages: ['build', 'test', 'deploy'],
      jobs: {
        compile: { stage: 'build', duration_s: [0.5, 1] },
        // Far longer than DRAIN_S in wall time (3–4 s at TIME_SCALE): copies running at a SIGTERM are handed back.
        unit: { stage: 'test', needs: ['compile'], parallel: 3, duration_s: [12, 16] },
        lint: { stage: 'test', needs: [], duration_s: [0.2, 0.5], allow_failure: true },
        release: { stage: 'deploy', duration_s: [0.2, 0.5] },
      },
    };

    // What the client created, and nothing else (the database is fresh).
    const projects: number[] = [];
    const builds = new Map<number, number>(); // build id → project id
    const followed = new Map<number, string>(); // build id → reassembled log

    async function createProject(): Promise<void> {
      const name = uniqueName('scale');
      const answer = await call('POST', '/projects', { body: { name, repo: `https://github.com/demo/${name}` } });
      if (!answer) return;
      if (answer.status === 201) {
        const id = (answer.body as { id: number }).id;
        // Every other project runs a pipeline of parallel jobs and needs instead of the default one (a PUT is safe
        // to send again).
        if (projects.length % 2 === 1) await expectCall(200, 'PUT', `/projects/${id}/pipeline`, { body: PIPELINE });
        projects.push(id);
        return;
      }
      // 409 is possible only for a resend after a lost connection: the first attempt created it. Check that it did.
      if (answer.status === 409) {
        const found = await expectCall<Page<{ id: number; name: string }>>(200, 'GET', `/projects?q=${name}`);
        const project = found?.items.find((item) => item.name === name);
        if (project) projects.push(project.id);
        else failures.push(`POST /projects ${name}: 409, yet no such project`);
        return;
      }
      failures.push(`POST /projects: ${answer.status} ${JSON.stringify(answer.body)}`);
    }

    async function trigger(): Promise<number | undefined> {
      const projectId = projects[Math.floor(Math.random() * projects.length)]!;
      const build = await expectCall<Build>(201, 'POST', `/projects/${projectId}/builds`, { headers: { 'idempotency-key': randomUUID() } });
      if (!build) return undefined;
      if (build.project_id !== projectId) failures.push(`build ${build.id} of project ${build.project_id}, triggered on ${projectId}`);
      builds.set(build.id, projectId);
      return build.id;
    }

    /**
     * Follows a build's live log to its `end` event, through the balancer (or first through `first`, a backend
     * picked while ready), resuming with Last-Event-ID wherever a stream is cut by a shutdown.
     */
    async function follow(buildId: number, first?: Backend): Promise<void> {
      let lastId: string | undefined;
      let offset = 0;
      let log = '';
      for (let connection = 1; connection <= 10; connection++) {
        const backend = connection === 1 && first ? first : await balancer.pick();
        const sentAt = Date.now();
        const describe = (what: string) =>
          `stream of build ${buildId} (connection ${connection}) → ${backend.server.name} opened ${at(sentAt)}, ${what} at ${at(Date.now())}; ` +
          `SIGTERM ${at(backend.signalledAt)}, balancer saw not-ready ${at(backend.notReadyAt)}`;
        let stream;
        try {
          stream = await openEventStream(`${backend.server.url}/builds/${buildId}/logs`, {
            authorization: `Bearer ${token}`,
            ...(lastId === undefined ? {} : { 'last-event-id': lastId }),
          });
        } catch (error) {
          const code = connectionErrorCode(error);
          if (code && backend.notReadySince !== undefined) {
            counts.resentAfterConnectionError++;
            resent.push(describe(code));
            continue;
          }
          failures.push(describe(`${code ?? 'error'}: ${(error as Error).message}`));
          return;
        }
        if (stream.response.status !== 200) {
          const allowed = stream.response.status === 503 && backend.notReadySince !== undefined && backend.notReadySince <= sentAt;
          if (allowed) {
            counts.accepted503++;
            continue;
          }
          failures.push(describe(`status ${stream.response.status}`));
          return;
        }
        await stream.waitClosed(60_000).catch(() => stream.abort());
        for (const event of stream.events()) {
          if (event.event === 'end') {
            followed.set(buildId, log);
            counts.streamsFollowed++;
            return;
          }
          offset += Buffer.byteLength(`${event.data}\n`);
          if (event.id !== String(offset)) {
            failures.push(describe(`event id ${event.id} where byte offset ${offset} was due`));
            return;
          }
          log += `${event.data}\n`;
          lastId = event.id;
        }
        // Cut before `end`: only a process that shuts down may do that, and it says so first.
        if (!stream.items.some((item) => item.kind === 'comment' && item.text === SHUTDOWN_COMMENT)) {
          failures.push(describe(`cut without the shutdown comment; raw tail ${JSON.stringify(stream.raw.slice(-300))}`));
          return;
        }
        counts.streamCuts++;
      }
      failures.push(`stream of build ${buildId}: no end after 10 connections`);
    }

    // The workload: concurrent loops until the restarts are over.
    let loading = true;
    const loops: Promise<void>[] = [];
    const loop = (name: string, pauseMs: number, body: () => Promise<void>) =>
      loops.push(
        (async () => {
          while (loading) {
            try {
              await body();
            } catch (error) {
              failures.push(`${name}: ${(error as Error).stack ?? String(error)}`);
            }
            await sleep(pauseMs);
          }
        })(),
      );
    const pinned: Promise<void>[] = [];

    for (let index = 0; index < 3; index++) await createProject();
    expect(projects.length, failures.join('\n')).toBe(3);

    loop('login', 200, async () => {
      const body = await expectCall<{ access_token?: string }>(200, 'POST', '/login', { body: { username: 'admin', password: 'admin123' } });
      if (body && typeof body.access_token !== 'string') failures.push(`POST /login: no access_token in ${JSON.stringify(body)}`);
      if (body) counts.logins++;
    });
    loop('projects', 400, createProject);
    for (const name of ['trigger-1', 'trigger-2']) loop(name, 500, async () => void (await trigger()));
    loop('list', 100, async () => {
      const page = await expectCall<Page<unknown>>(200, 'GET', '/projects?per_page=100');
      const projectId = projects[Math.floor(Math.random() * projects.length)]!;
      const list = await expectCall<Page<Build>>(200, 'GET', `/projects/${projectId}/builds?per_page=20`);
      if (page && list) counts.listings++;
    });
    for (const name of ['follow-1', 'follow-2']) {
      loop(name, 100, async () => {
        const newest = [...builds.keys()].filter((id) => !followed.has(id)).at(-1);
        if (newest !== undefined) await follow(newest);
      });
    }

    // The rolling restart.
    await sleep(3000);
    const exits: { name: string; exit: Exit | 'timeout'; afterMs: number }[] = [];
    for (let index = 0; index < SERVERS; index++) {
      const backend = balancer.backends[index]!;
      const victim = backend.server;
      // Keep every worker busy; then follow, on the process about to stop (picked while it is ready), a few builds
      // queued behind that backlog, so that some streams are still open when it stops.
      await Promise.all(Array.from({ length: BURST }, () => trigger()));
      await sleep(1000);
      const late = await Promise.all(Array.from({ length: PINNED_STREAMS }, () => trigger()));
      for (const id of late) if (id !== undefined) pinned.push(follow(id, backend));
      await sleep(200);

      backend.signalledAt = Date.now();
      victim.child.kill('SIGTERM');
      const exit = await Promise.race([victim.exited, sleep(15_000).then(() => 'timeout' as const)]);
      exits.push({ name: victim.name, exit, afterMs: Date.now() - backend.signalledAt });
      balancer.remove(backend);

      const replacement = await startServer(`usine-${index + 1}-new`, { DATABASE_URL: scratch!.url, ...SERVER_ENV }, undefined, READY_TIMEOUT_MS);
      servers.push(replacement);
      balancer.add(replacement);
      await sleep(1500);
    }
    await sleep(1000);
    loading = false;
    await Promise.all(loops);
    await Promise.all(pinned);

    // Every process stopped cleanly, within the 10 s bound.
    for (const { name, exit, afterMs } of exits) {
      expect(exit, `${name} after ${afterMs} ms\n${diagnostics()}`).toEqual({ code: 0, signal: null });
    }
    const summary = () =>
      `counts ${JSON.stringify(counts)}\nexits ${JSON.stringify(exits)}\nresent:\n${resent.join('\n')}\n` +
      `backends:\n${balancer.backends.map((b) => `${b.server.name} pid ${b.server.pid}: SIGTERM ${at(b.signalledAt)}, not-ready seen ${at(b.notReadyAt)}`).join('\n')}`;
    expect(failures, `${failures.length} failures; the first 20:\n${failures.slice(0, 20).join('\n')}\n${summary()}\n${diagnostics()}`).toEqual([]);

    // The queue drains.
    const live = () => balancer.backends.find((backend) => backend.ready)!.server;
    const deadline = Date.now() + QUEUE_DRAIN_TIMEOUT_MS;
    for (;;) {
      const queue = await queueFigures(live().url);
      if (queue && queue.queued + queue.running === 0) break;
      if (Date.now() > deadline) throw new Error(`queue not drained: ${JSON.stringify(queue)}\n${diagnostics()}`);
      await sleep(250);
    }

    // Totals: what the database holds is exactly what the client created.
    const read = async <T>(path: string): Promise<T> => {
      const response = await fetch(`${live().url}${path}`, { headers: { authorization: `Bearer ${token}` } });
      expect(response.status, path).toBe(200);
      return (await response.json()) as T;
    };
    expect((await read<Page<unknown>>('/projects?per_page=1')).total).toBe(projects.length);
    const stored: Build[] = [];
    for (const projectId of projects) {
      const items: Build[] = [];
      for (let page = 1; ; page++) {
        const body = await read<Page<Build>>(`/projects/${projectId}/builds?per_page=100&page=${page}`);
        items.push(...body.items);
        if (body.items.length < 100) {
          expect(body.total, `builds of project ${projectId}`).toBe(items.length);
          break;
        }
      }
      const triggeredHere = [...builds].filter(([, project]) => project === projectId).map(([id]) => id);
      expect(items.length, `builds of project ${projectId}`).toBe(triggeredHere.length);
      stored.push(...items);
    }
    expect(new Set(stored.map((build) => build.id))).toEqual(new Set(builds.keys()));

    // Every build ended with one "Build finished" line; every job that ran, ran to completion exactly once; the jobs
    // handed back at shutdown were finished elsewhere.
    const signalledPids = new Set(balancer.backends.filter((backend) => backend.signalledAt !== undefined).map((backend) => backend.server.pid));
    const problems: string[] = [];
    const explain = (build: Build, why: string) => `build ${build.id} (project ${build.project_id} #${build.number}, ${build.status}): ${why}\n${build.logs}`;
    let released = 0;
    let liveLeaseLosses = 0;
    for (const build of stored) {
      if (build.status !== 'success' && build.status !== 'fail') problems.push(explain(build, 'not success|fail'));
      const finished = logEvents(build.logs).filter((event) => event.kind === 'finished');
      if (finished.length !== 1) {
        problems.push(explain(build, `${finished.length} "Build finished:" lines`));
        continue;
      }
      if (finished[0]!.kind === 'finished' && finished[0]!.status !== build.status) problems.push(explain(build, `finished line says ${finished[0]!.status}`));
      for (const [job, events] of eventsByJob(build.logs)) {
        const finishes = events.filter((event) => event.kind === 'job_finished').length;
        if (finishes !== 1) problems.push(explain(build, `job ${job}: ${finishes} job-finished lines`));
        events.forEach((event, index) => {
          const previous = events[index - 1];
          if (event.kind === 'pickup' && index > 0 && previous?.kind !== 'release' && previous?.kind !== 'takeover') {
            problems.push(explain(build, `job ${job}, event ${index + 1}: picked up again without a release or take-over before`));
          }
          if ((event.kind === 'release' || event.kind === 'takeover') && (previous?.kind !== 'pickup' || previous.owner !== event.owner)) {
            problems.push(explain(build, `job ${job}, event ${index + 1}: ${event.kind} by ${event.owner}, which had not picked it up last`));
          }
          if (event.kind === 'release') {
            released++;
            if (!signalledPids.has(pidOf(event.owner))) problems.push(explain(build, `job ${job}: released by ${event.owner}, which was not stopped`));
            const next = events[index + 1];
            if (next?.kind !== 'pickup' || pidOf(next.owner) === pidOf(event.owner)) problems.push(explain(build, `job ${job}: released, but not picked up by another process`));
          }
          if (event.kind === 'takeover') {
            // A stopped process hands its unfinished jobs back: none of them may wait for its lease to expire.
            if (signalledPids.has(pidOf(event.owner))) problems.push(explain(build, `job ${job}: taken over from ${event.owner}: not handed back at shutdown`));
            else liveLeaseLosses++;
          }
          if (event.kind === 'giveup') problems.push(explain(build, `job ${job}: failed after too many claims`));
          if (event.kind === 'job_finished' && (index !== events.length - 1 || previous?.kind !== 'pickup')) {
            problems.push(explain(build, `job ${job}, event ${index + 1}: finished, but not right after its last pick-up`));
          }
        });
      }
    }
    expect(problems, `${problems.length} problems; the first 10:\n${problems.slice(0, 10).join('\n\n')}\n${summary()}\n${diagnostics()}`).toEqual([]);
    // No process died: a lease can only be lost by a live process that stalled past it (a very loaded box). Counted.
    if (liveLeaseLosses > 0) console.warn(`scale-out: ${liveLeaseLosses} leases of live processes expired and were taken over`);

    // Every followed stream, reassembled across reconnects, is the build's final log.
    const byId = new Map(stored.map((build) => [build.id, build]));
    for (const [id, log] of followed) expect(log, `stream of build ${id}`).toBe(byId.get(id)!.logs);

    // The restarts really happened under load: jobs handed back, streams cut and resumed, work of every kind done.
    console.info(`scale-out: ${summary()}\nprojects ${projects.length}, builds ${builds.size}, released ${released}`);
    expect(released, summary()).toBeGreaterThan(0);
    expect(counts.streamCuts, summary()).toBeGreaterThan(0);
    expect(counts.logins).toBeGreaterThan(0);
    expect(counts.listings).toBeGreaterThan(0);
    expect(projects.length).toBeGreaterThan(3);
  }, 240_000);
});
