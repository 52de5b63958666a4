/**
 * Live build logs across replicas (PostgreSQL only): two real server processes on one database, A with no build
 * workers (BUILD_CONCURRENCY=0, an API-only replica) and B with one. A client follows a build's log on A while the
 * build runs on B. Nothing in A's process ever sees the build run: every line reaches A's stream through PostgreSQL
 * (LISTEN/NOTIFY wakes the stream up; the stream then reads the new bytes from the database). The second test makes
 * the stream's 2 s fallback poll unable to explain what arrives, so it fails if NOTIFY between processes is broken.
 * The third logs out through B while a stream is open on A: A's stream ends (routes/build-logs re-checks its caller
 * through the caller cache, which PostgreSQL's notifications invalidate).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { planDefaultBuild } from './builds/default-run.js';
import { createScratchDatabase, testDb, uniqueName, type ScratchDatabase } from './helper.js';
import { apiClient, describeServers, loginAdmin, startServer, stopServer, type ApiClient, type ServerProcess } from './processes.js';
import { openEventStream, type OpenedStream, type SseEventItem } from './sse-client.js';

const TIME_SCALE = 0.3;
/** The stream's fallback poll in routes/build-logs/index.ts: without events, a stream reads its build this often. */
const STREAM_POLL_MS = 2000;
/** Events of one read of the build come out together; distinct reads (one per NOTIFY) are further apart than this. */
const BURST_GAP_MS = 30;

interface Build {
  id: number;
  project_id: number;
  number: number;
  status: string;
  logs: string;
  duration_s: number | null;
  started_at: string | null;
  finished_at: string | null;
}

/**
 * A BUILD_SEED under which builds 1–3 of project 1 (the first project of a fresh database) last at least 7 simulated
 * seconds (2.1 s of wall time at TIME_SCALE), so that they write many times while followed: their default pipeline's
 * jobs planned as the engine plans them (test/builds/default-run.ts). Only makes the builds long: no assertion depends
 * on it.
 */
function longBuildSeed(): string {
  const project = { name: 'replicas', repo: 'https://github.com/demo/replicas' };
  for (let index = 0; ; index++) {
    const seed = `replicas-${index}`;
    const durations = [1, 2, 3].map((number) => planDefaultBuild({ project, build: { project_id: 1, number, branch: 'main', commit_sha: '0'.repeat(40) } }, 0, seed).planned_s);
    if (durations.every((duration) => duration >= 7)) return seed;
  }
}

/** The pid inside each engine owner `<host>:<pid>:<tag>/w<n>` named by the log's "picked up by" lines (one per job claim). */
function pickupPids(logs: string): number[] {
  return [...logs.matchAll(/picked up by (\S+), claim \d+$/gm)].map((match) => Number(match[1]!.split(':').at(-2)));
}

/** The stream's data events before `end`, checked against the final log: same lines, and ids = byte offsets past each. */
function expectStreamEqualsLog(stream: OpenedStream, build: Build): SseEventItem[] {
  const events = stream.events();
  const end = events.at(-1);
  expect(end?.event, `last event: ${JSON.stringify(end)}`).toBe('end');
  expect(JSON.parse(end!.data)).toEqual({ status: build.status });
  const lines = events.slice(0, -1);
  expect(lines.every((event) => event.event === 'message')).toBe(true);
  expect(lines.map((event) => `${event.data}\n`).join('')).toBe(build.logs);
  let offset = 0;
  for (const line of lines) {
    offset += Buffer.byteLength(`${line.data}\n`);
    expect(line.id).toBe(String(offset));
  }
  expect(end!.id).toBe(String(Buffer.byteLength(build.logs)));
  return lines;
}

describe.skipIf(testDb !== 'pg')('live build logs served by one replica while another runs the build', () => {
  let scratch: ScratchDatabase | undefined;
  let apiOnly: ServerProcess | undefined;
  let worker: ServerProcess | undefined;
  let client: ApiClient;
  let token: string;
  let projectId: number;
  const diagnostics = () => describeServers([apiOnly, worker].filter((server) => server !== undefined)).slice(-16_000);

  beforeAll(async () => {
    scratch = await createScratchDatabase('pg');
    const common = { DATABASE_URL: scratch.url, BUILD_TIME_SCALE: String(TIME_SCALE), BUILD_FAIL_RATE: '0', BUILD_SEED: longBuildSeed() };
    [apiOnly, worker] = await Promise.all([
      startServer('api-only', { ...common, BUILD_CONCURRENCY: '0' }, undefined, 60_000),
      startServer('worker', { ...common, BUILD_CONCURRENCY: '1' }, undefined, 60_000),
    ]);
    token = await loginAdmin(apiOnly.url);
    client = apiClient(apiOnly.url, token);
    projectId = (await client.expect<{ id: number }>(201, 'POST', '/projects', { name: uniqueName('replicas'), repo: 'https://github.com/demo/replicas' })).id;
  }, 90_000);

  afterAll(async () => {
    await Promise.all([apiOnly, worker].map((server) => server && stopServer(server, 5000)));
    await scratch?.drop();
  });

  /** Triggers a build through A and follows its log on A until the stream ends; returns the stream and the final build. */
  async function followOnApiOnly(): Promise<{ stream: OpenedStream; build: Build; openedAt: number; runningWhenFirstLine: string }> {
    const queued = await client.expect<Build>(201, 'POST', `/projects/${projectId}/builds`);
    const openedAt = Date.now();
    const stream = await openEventStream(`${apiOnly!.url}/builds/${queued.id}/logs`, { authorization: `Bearer ${token}` });
    expect(stream.response.status).toBe(200);
    expect(stream.response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    await stream.waitFor((item) => item.kind === 'event', 20_000);
    const runningWhenFirstLine = (await client.expect<Build>(200, 'GET', `/builds/${queued.id}`)).status;
    await stream.waitClosed(30_000);
    const build = await client.expect<Build>(200, 'GET', `/builds/${queued.id}`);
    return { stream, build, openedAt, runningWhenFirstLine };
  }

  it('streams on A, line by line while it runs, a build that runs on B, then `end` with its final status', async () => {
    const { stream, build, runningWhenFirstLine } = await followOnApiOnly();
    expect(build.status, diagnostics()).toBe('success');
    // B ran its four jobs, once each; A (no workers) never ran any.
    expect(pickupPids(build.logs)).toEqual([worker!.pid, worker!.pid, worker!.pid, worker!.pid]);
    // The first line was there while the build was still running…
    expect(runningWhenFirstLine).toBe('running');
    const lines = expectStreamEqualsLog(stream, build);
    // …and so were most of the others: they arrived before the build finished, not in one piece at the end.
    const finishedAt = Date.parse(build.finished_at!);
    const early = lines.filter((line) => line.at < finishedAt);
    expect(early.length, `${early.length} of ${lines.length} lines before ${build.finished_at}`).toBeGreaterThan(lines.length / 2);
  }, 60_000);

  it('delivers the writes one by one, more often than the 2 s fallback poll could (fails if NOTIFY is broken)', async () => {
    const { stream, build, openedAt } = await followOnApiOnly();
    expect(build.status, diagnostics()).toBe('success');
    expect(pickupPids(build.logs)).toEqual([worker!.pid, worker!.pid, worker!.pid, worker!.pid]);
    const events = expectStreamEqualsLog(stream, build).concat(stream.events().at(-1)!);

    // Bursts: events that came out of one read of the build (a pump of the stream) arrive together.
    const bursts: SseEventItem[][] = [];
    for (const event of events) {
      const current = bursts.at(-1);
      if (current && event.at - current.at(-1)!.at <= BURST_GAP_MS) current.push(event);
      else bursts.push([event]);
    }
    // Without NOTIFY, a stream on A reads the build once when it opens and then once every 2 s: over the stream's
    // life it could deliver at most that many separate bursts. The build writes many times (each step, each suite),
    // and every write reaches A as a NOTIFY, so the stream delivers clearly more bursts than polling alone allows.
    const lifeMs = events.at(-1)!.at - openedAt;
    const pollOnlyBursts = 1 + Math.floor(lifeMs / STREAM_POLL_MS);
    const described = bursts.map((burst) => `+${burst[0]!.at - openedAt} ms: ${burst.length} events`).join('\n');
    expect(bursts.length, `stream open ${lifeMs} ms, poll alone: ≤ ${pollOnlyBursts} bursts; got\n${described}\n${diagnostics()}`).toBeGreaterThanOrEqual(
      pollOnlyBursts + 3,
    );
  }, 60_000);

  it("ends A's stream with `end` {reason: session_revoked} when its session logs out through B", async () => {
    // A session of its own (logging out the file's session would end the other tests' access).
    const session = await loginAdmin(apiOnly!.url);
    // Two builds: the second waits behind the first (B runs one at a time), so its stream is still open at logout.
    await client.expect<Build>(201, 'POST', `/projects/${projectId}/builds`);
    const queued = await client.expect<Build>(201, 'POST', `/projects/${projectId}/builds`);
    const stream = await openEventStream(`${apiOnly!.url}/builds/${queued.id}/logs`, { authorization: `Bearer ${session}` });
    expect(stream.response.status).toBe(200);
    await stream.waitFor((item) => item.kind === 'retry');
    await apiClient(worker!.url, session).expect(204, 'POST', '/logout');
    // Nothing in A's process saw the logout: A hears of it from PostgreSQL.
    const end = await stream.waitFor((item) => item.kind === 'event' && item.event === 'end', 10_000);
    await stream.waitClosed(2000);
    expect(end.kind === 'event' && JSON.parse(end.data), diagnostics()).toEqual({ status: 'queued', reason: 'session_revoked' });
    expect(stream.events().at(-1)).toBe(end);
  }, 60_000);
});
