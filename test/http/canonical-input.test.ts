/**
 * Non-canonical input (issue #15): integers in paths, query strings and headers are decimal digits or a 400, never
 * coerced from `0x10` or `1e3`; names are stored NFC-normalised and refuse characters that make names look alike;
 * usernames are unique whatever their case, and log in in any case; `Link` carries only documented parameters.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { injectAs, login, problemOf, testDb, uniqueName, useTestApp } from '../helper.js';

const ctx = useTestApp();
const admin = (options: Parameters<typeof injectAs>[2]) => injectAs(ctx.app, ctx.adminToken, options);

/** Spellings JavaScript (and Ajv's coercion) reads as an integer, which the API must not. */
const NON_CANONICAL = ['0x10', '1e3', '+1', '1.0', ' 1', '1 ', '0b1', '1_000', '-0'];

/** One character of each refused class, and the word its message uses. */
const REFUSED: [string, string, string][] = [
  ['BEL', '\u0007', 'control character'],
  ['C1 control', '\u0085', 'control character'],
  ['zero-width space', '\u200b', 'zero-width character'],
  ['zero-width joiner', '\u200d', 'zero-width character'],
  ['word joiner', '\u2060', 'zero-width character'],
  ['byte-order mark', '\ufeff', 'zero-width character'],
  ['right-to-left override', '\u202e', 'bidirectional control character'],
  ['first-strong isolate', '\u2068', 'bidirectional control character'],
  ['lone high surrogate', '\ud800', 'lone surrogate'],
  ['lone low surrogate', '\udc00', 'lone surrogate'],
];

describe(`non-canonical input (${testDb})`, () => {
  let projectId: number;
  let buildId: number;

  beforeAll(async () => {
    const project = await admin({ method: 'POST', url: '/projects', payload: { name: uniqueName('canon'), repo: 'https://github.com/demo/repo' } });
    projectId = project.json<{ id: number }>().id;
    const build = await admin({ method: 'POST', url: `/projects/${projectId}/builds` });
    buildId = build.json<{ id: number }>().id;
  });

  describe('integers are decimal digits only', () => {
    it('in a path: /projects/0x10 and friends are 400 on /params/id, where /projects/<id> is found', async () => {
      expect((await admin({ method: 'GET', url: `/projects/${projectId}` })).statusCode).toBe(200);
      for (const spelling of NON_CANONICAL) {
        const response = await admin({ method: 'GET', url: `/projects/${encodeURIComponent(spelling)}` });
        expect(response.statusCode, spelling).toBe(400);
        expect(problemOf(response).errors, spelling).toEqual([{ path: '/params/id', message: 'must be an integer written with decimal digits only' }]);
      }
    });

    it('in query strings: ?page=, ?per_page= and ?offset= refuse them; digits pass', async () => {
      expect((await admin({ method: 'GET', url: '/projects?page=1&per_page=007' })).statusCode).toBe(200);
      expect((await admin({ method: 'GET', url: `/builds/${buildId}/logs?offset=0` })).statusCode).toBe(200);
      for (const spelling of NON_CANONICAL) {
        const value = encodeURIComponent(spelling);
        for (const [url, path] of [
          [`/projects?page=${value}`, '/querystring/page'],
          [`/users?per_page=${value}`, '/querystring/per_page'],
          [`/projects/${projectId}/builds?page=${value}`, '/querystring/page'],
          [`/builds/${buildId}/logs?offset=${value}`, '/querystring/offset'],
        ] as const) {
          const response = await admin({ method: 'GET', url });
          expect(response.statusCode, url).toBe(400);
          expect(problemOf(response).errors?.map((error) => error.path), url).toEqual([path]);
        }
      }
    });

    it('in headers: Last-Event-ID refuses them', async () => {
      for (const spelling of NON_CANONICAL) {
        const response = await admin({ method: 'GET', url: `/builds/${buildId}/logs`, headers: { 'last-event-id': spelling } });
        expect(response.statusCode, spelling).toBe(400);
        expect(problemOf(response).errors?.map((error) => error.path), spelling).toEqual(['/headers/last-event-id']);
      }
    });

    it('a value that is not a number at all is reported once, not twice', async () => {
      const response = await admin({ method: 'GET', url: '/projects?page=abc' });
      expect(response.statusCode).toBe(400);
      expect(problemOf(response).errors).toHaveLength(1);
    });
  });

  describe('names are NFC-normalised and refuse look-alike characters', () => {
    it('stores and returns "e\\u0301cole" as "école", which is then taken in either spelling', async () => {
      const decomposed = `e\u0301cole-${uniqueName('n')}`;
      const composed = decomposed.normalize('NFC');
      expect(composed).not.toBe(decomposed);
      const created = await admin({ method: 'POST', url: '/projects', payload: { name: decomposed, repo: 'https://github.com/demo/repo', default_branch: 'caf\u0065\u0301' } });
      expect(created.statusCode).toBe(201);
      expect(created.json()).toMatchObject({ name: composed, default_branch: 'café' });
      const id = created.json<{ id: number }>().id;
      expect((await admin({ method: 'GET', url: `/projects/${id}` })).json()).toMatchObject({ name: composed, default_branch: 'café' });
      for (const spelling of [composed, decomposed]) {
        const again = await admin({ method: 'POST', url: '/projects', payload: { name: spelling, repo: 'https://github.com/demo/repo' } });
        expect(again.statusCode, JSON.stringify(spelling)).toBe(409);
      }
      // A build of the decomposed branch is a build of the stored one.
      const build = await admin({ method: 'POST', url: `/projects/${id}/builds`, payload: { branch: 'cafe\u0301' } });
      expect(build.statusCode).toBe(201);
      expect(build.json()).toMatchObject({ branch: 'café' });
      const listed = await admin({ method: 'GET', url: `/projects/${id}/builds?branch=${encodeURIComponent('cafe\u0301')}` });
      expect(listed.json<{ total: number }>().total).toBe(1);
    });

    it.each(REFUSED)('refuses a %s in project names, branches and usernames with a 400 naming the field', async (_label, character, words) => {
      const name = `a${character}b`;
      const expectRefused = (response: Awaited<ReturnType<typeof admin>>, path: string) => {
        expect(response.statusCode, path).toBe(400);
        const errors = problemOf(response).errors ?? [];
        expect(errors.some((error) => error.path === path && error.message.includes(words)), JSON.stringify(errors)).toBe(true);
      };
      expectRefused(await admin({ method: 'POST', url: '/projects', payload: { name, repo: 'https://github.com/demo/repo' } }), '/body/name');
      expectRefused(await admin({ method: 'PATCH', url: `/projects/${projectId}`, payload: { default_branch: name } }), '/body/default_branch');
      expectRefused(await admin({ method: 'POST', url: `/projects/${projectId}/builds`, payload: { branch: name } }), '/body/branch');
      // A lone surrogate has no UTF-8 form: it cannot reach a query string (it would arrive as U+FFFD).
      if (!words.includes('surrogate')) {
        expectRefused(await admin({ method: 'GET', url: `/projects/${projectId}/builds?branch=${encodeURIComponent(name)}` }), '/querystring/branch');
      }
      expectRefused(await admin({ method: 'POST', url: '/users', payload: { username: name, password: 'a-decent-passphrase', role: 'viewer' } }), '/body/username');
    });
  });

  describe('usernames are unique whatever their case', () => {
    it('Alice then alice (or ALICE) is a 409; alice logs in as Alice, who keeps her spelling', async () => {
      const suffix = uniqueName('').slice(1);
      const alice = `Alice${suffix}`;
      const created = await admin({ method: 'POST', url: '/users', payload: { username: alice, password: 'a-decent-passphrase', role: 'viewer' } });
      expect(created.statusCode).toBe(201);
      for (const other of [alice.toLowerCase(), alice.toUpperCase()]) {
        const duplicate = await admin({ method: 'POST', url: '/users', payload: { username: other, password: 'another-passphrase', role: 'admin' } });
        expect(duplicate.statusCode, other).toBe(409);
        expect(problemOf(duplicate).error).toBe('conflict');
      }
      const token = await login(ctx.app, alice.toLowerCase(), 'a-decent-passphrase');
      const me = await injectAs(ctx.app, token, { method: 'GET', url: '/me' });
      expect(me.json()).toMatchObject({ username: alice, role: 'viewer' });
      const users = await admin({ method: 'GET', url: '/users?per_page=100' });
      expect(users.json<{ items: { username: string }[] }>().items.filter((user) => user.username.toLowerCase() === alice.toLowerCase())).toHaveLength(1);
    });
  });

  describe('Link carries only documented parameters', () => {
    it('drops a 12 KB ?junk= but keeps ?q= (projects), ?branch=/?status= (builds)', async () => {
      const junk = 'j'.repeat(12 * 1024);
      const projects = await admin({ method: 'GET', url: `/projects?junk=${junk}&q=canon&per_page=1` });
      expect(projects.statusCode).toBe(200);
      const link = String(projects.headers.link);
      expect(link).not.toContain('junk');
      expect(link).toContain('q=canon');
      expect(link.length).toBeLessThan(1024);

      const builds = await admin({ method: 'GET', url: `/projects/${projectId}/builds?junk=${junk}&status=success&branch=main&per_page=1` });
      expect(builds.statusCode).toBe(200);
      const buildLink = String(builds.headers.link);
      expect(buildLink).not.toContain('junk');
      expect(buildLink).toContain('status=success');
      expect(buildLink).toContain('branch=main');

      const users = await admin({ method: 'GET', url: `/users?junk=${junk}` });
      expect(String(users.headers.link)).not.toContain('junk');
    });
  });
});
