/**
 * Live log stream caps, over real sockets: four users storm one server with more streams than their own cap
 * (SSE_MAX_STREAMS_PER_USER) and, together, than the process's (SSE_MAX_STREAMS); then streams end every way one can
 * (the client hangs up, its session is logged out, its user is deleted, the build finishes) and the slots must all
 * come back exactly once: afterwards the server accepts exactly SSE_MAX_STREAMS streams again, not one more or less.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from '../../src/server.js';
import { createScratchDatabase, injectAs, login, testConfig, testDb, uniqueName, type ScratchDatabase } from '../helper.js';
import { openEventStream, type OpenedStream } from '../sse-client.js';
import { probe, recordScenario, RequestTally } from './record.js';

const PER_USER = 20;
const TOTAL = 60;
/** Streams each user asks for in the storm: twice their cap. */
const ASKED = 2 * PER_USER;

interface User {
  id: number;
  username: string;
  password: string;
  auth: Record<string, string>;
}

describe(`live log stream caps (${testDb})`, () => {
  let scratch: ScratchDatabase;
  let app: FastifyInstance;
  let base: string;
  let admin: string;
  let buildId: number;
  const tally = new RequestTally();
  const figures: Record<string, number | string | boolean> = {};
  const findings: string[] = [];
  const everyStream: OpenedStream[] = [];

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    app = await createServer(
      testConfig(scratch.url, {
        // No workers: the build waits, so its streams stay open until this scenario ends them.
        BUILD_CONCURRENCY: '0',
        SSE_MAX_STREAMS_PER_USER: String(PER_USER),
        SSE_MAX_STREAMS: String(TOTAL),
        UNDER_PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0',
      }),
      { logger: false },
    );
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    admin = await login(app);
    const project = await injectAs(app, admin, { method: 'POST', url: '/projects', payload: { name: uniqueName('caps'), repo: 'https://example.com/caps.git' } });
    const build = await injectAs(app, admin, { method: 'POST', url: `/projects/${project.json<{ id: number }>().id}/builds` });
    buildId = build.json<{ id: number }>().id;
  });

  afterAll(async () => {
    for (const stream of everyStream) stream.abort();
    figures.requests = tally.requests;
    figures['5xx'] = tally.fiveXX;
    figures.lost = 0;
    recordScenario({
      scenario: 'stream-caps',
      db: testDb,
      what:
        `4 users each asked for ${ASKED} live log streams at once (SSE_MAX_STREAMS_PER_USER=${PER_USER}, SSE_MAX_STREAMS=${TOTAL}) over real ` +
        'sockets; then streams ended by hang-up, logout, user deletion and the build finishing, and the server was filled again.',
      happened: findings.length
        ? findings.join(' ')
        : `Exactly ${TOTAL} streams accepted (none over ${PER_USER} per user), the rest 429 with Retry-After, no 5xx; every ended stream ` +
          `gave its slot back exactly once (${TOTAL} accepted again, the next refused); logout and deletion ended streams with their reason.`,
      ok: findings.length === 0,
      figures,
    });
    await app?.close();
    await scratch?.drop();
  });

  const url = () => `${base}/builds/${buildId}/logs`;

  async function newUser(): Promise<User> {
    const username = uniqueName('streamer');
    const password = `Pw-${uniqueName('secret')}-x9`;
    const created = await injectAs(app, admin, { method: 'POST', url: '/users', payload: { username, password, role: 'viewer' } });
    expect(created.statusCode, created.body).toBe(201);
    return { id: created.json<{ id: number }>().id, username, password, auth: { authorization: `Bearer ${await login(app, username, password)}` } };
  }

  /** Opens `count` streams as `auth` at once; the accepted ones are kept, the refused ones' answers counted. */
  async function storm(auth: Record<string, string>, count: number) {
    const answers = await Promise.all(Array.from({ length: count }, () => openEventStream(url(), auth, { transport: 'http' })));
    const accepted: OpenedStream[] = [];
    let refused = 0;
    for (const answer of answers) {
      tally.add(answer.response.status);
      if (answer.response.status === 200) accepted.push(answer);
      else {
        expect(answer.response.status).toBe(429);
        expect(Number(answer.response.headers.get('retry-after'))).toBeGreaterThan(0);
        refused++;
      }
    }
    everyStream.push(...accepted);
    return { accepted, refused };
  }

  /** Fills the server again with fresh users, PER_USER each, until one is refused; the number accepted. */
  async function refill(): Promise<{ accepted: OpenedStream[]; nextStatus: number }> {
    const accepted: OpenedStream[] = [];
    for (;;) {
      const user = await newUser();
      const round = await storm(user.auth, PER_USER);
      accepted.push(...round.accepted);
      if (round.refused > 0) return { accepted, nextStatus: 429 };
      if (accepted.length > TOTAL) return { accepted, nextStatus: 200 };
    }
  }

  it('holds both caps under a storm, gives every slot back once however a stream ends', async () => {
    const users = [await newUser(), await newUser(), await newUser(), await newUser()];
    const storms = await Promise.all(users.map((user) => storm(user.auth, ASKED)));
    const accepted = storms.map((result) => result.accepted.length);
    figures.storm_asked = ASKED * users.length;
    figures.storm_accepted = accepted.reduce((sum, n) => sum + n, 0);
    figures.storm_refused = storms.reduce((sum, result) => sum + result.refused, 0);
    figures.storm_max_per_user = Math.max(...accepted);
    figures.storm_accepted_by_user = accepted.join(' / ');
    if (figures.storm_accepted !== TOTAL) findings.push(`${figures.storm_accepted} streams accepted in the storm, not ${TOTAL}.`);
    if (figures.storm_max_per_user > PER_USER) findings.push(`a user held ${figures.storm_max_per_user} streams (cap ${PER_USER}).`);
    expect(figures.storm_accepted).toBe(TOTAL);
    expect(Math.max(...accepted)).toBeLessThanOrEqual(PER_USER);

    // The capped server still answers everything else.
    const projects = await probe(`${base}/projects`, { headers: { authorization: `Bearer ${admin}` } });
    tally.add(projects.status);
    expect(projects.status).toBe(200);

    // Ends, every way: user 0's clients hang up, user 1 logs out, user 2 is deleted.
    const [hungUp, loggedOut, deleted] = storms.map((result) => result.accepted);
    for (const stream of hungUp!) stream.abort();
    const logout = await probe(`${base}/logout`, { method: 'POST', headers: users[1]!.auth });
    tally.add(logout.status);
    expect(logout.status).toBe(204);
    const deletion = await injectAs(app, admin, { method: 'DELETE', url: `/users/${users[2]!.id}` });
    expect(deletion.statusCode).toBe(204);
    await Promise.all([...hungUp!, ...loggedOut!, ...deleted!].map((stream) => stream.waitClosed(10_000)));
    const reasons = (streams: OpenedStream[]) =>
      streams.map((stream) => {
        const end = stream.events().at(-1);
        return end?.event === 'end' ? (JSON.parse(end.data) as { reason?: string }).reason : 'none';
      });
    figures.ended_by_hang_up = hungUp!.length;
    figures.ended_by_logout = reasons(loggedOut!).filter((reason) => reason === 'session_revoked').length;
    figures.ended_by_user_deletion = reasons(deleted!).filter((reason) => reason === 'user_deleted').length;
    expect(reasons(loggedOut!)).toEqual(loggedOut!.map(() => 'session_revoked'));
    expect(reasons(deleted!)).toEqual(deleted!.map(() => 'user_deleted'));

    // With the room given back, the fourth user fills up to their own cap; then the build finishes (canceled), and
    // each of their streams ends with `end` {status: canceled}.
    const late = await storm(users[3]!.auth, PER_USER);
    const survivors = [...storms[3]!.accepted, ...late.accepted];
    expect(survivors).toHaveLength(PER_USER);
    expect((await injectAs(app, admin, { method: 'POST', url: `/builds/${buildId}/cancel` })).statusCode).toBe(200);
    await Promise.all(survivors.map((stream) => stream.waitClosed(10_000)));
    figures.ended_by_build_finishing = survivors.filter((stream) => stream.events().at(-1)?.data === JSON.stringify({ status: 'canceled' })).length;
    expect(figures.ended_by_build_finishing).toBe(survivors.length);

    // Every slot back, exactly once: a finished build's streams end at once, so hold them on a new, waiting build.
    const project = await injectAs(app, admin, { method: 'POST', url: '/projects', payload: { name: uniqueName('caps'), repo: 'https://example.com/caps.git' } });
    buildId = (await injectAs(app, admin, { method: 'POST', url: `/projects/${project.json<{ id: number }>().id}/builds` })).json<{ id: number }>().id;
    const again = await refill();
    figures.refill_accepted = again.accepted.length;
    if (again.accepted.length !== TOTAL) findings.push(`${again.accepted.length} streams accepted after every stream ended, not ${TOTAL}: slots leaked or were given back twice.`);
    expect(again.accepted.length).toBe(TOTAL);
    expect(again.nextStatus).toBe(429);
    expect(tally.fiveXX).toBe(0);
    expect(tally.errors).toBe(0);
  });
});
