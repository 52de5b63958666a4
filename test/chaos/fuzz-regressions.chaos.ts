/**
 * Inputs the fuzzer found (or that belong to the same family), replayed by name on both databases so that each stays
 * fixed. NUL characters are the main family: PostgreSQL cannot store U+0000 in text (it raises "invalid byte sequence
 * for encoding UTF8: 0x00"), so any unvalidated text that reaches a query as a parameter is a 500 there, while SQLite
 * happily stores it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/schemas/problem.js';
import { injectAs, testDb, useTestApp } from '../helper.js';
import { changedTables, snapshotDb } from './db-snapshot.js';
import { recordScenario } from './record.js';

interface Case {
  name: string;
  method: 'GET' | 'POST' | 'PATCH';
  url: string;
  payload?: Record<string, unknown>;
  /** Statuses that are right for this request. */
  expected: number[];
}

const CASES: Case[] = [
  { name: 'artifact name with NUL', method: 'GET', url: '/builds/1/artifacts/%00', expected: [400, 404] },
  { name: 'artifact name with an inner NUL', method: 'GET', url: '/builds/1/artifacts/a%00b.tar.gz', expected: [400, 404] },
  { name: 'project search with NUL', method: 'GET', url: '/projects?q=%00', expected: [200, 400] },
  { name: 'project search ending in NUL', method: 'GET', url: '/projects?q=fuzz%00', expected: [200, 400] },
  { name: 'builds filtered by a branch with NUL', method: 'GET', url: '/projects/1/builds?branch=a%00', expected: [200, 400] },
  { name: 'login with a NUL in the username', method: 'POST', url: '/login', payload: { username: 'admin\u0000', password: 'whatever-password' }, expected: [400, 401] },
  { name: 'refresh with a NUL in the token', method: 'POST', url: '/token/refresh', payload: { refresh_token: 'abc\u0000def' }, expected: [400, 401] },
  // A NUL cannot be stored on PostgreSQL: the same request must be refused alike on both databases, as a 400.
  { name: 'project name with NUL', method: 'POST', url: '/projects', payload: { name: 'nul\u0000name', repo: 'https://example.com/n.git' }, expected: [400] },
  // The name pattern ^\S(?:[^\u0000-\u001f\u007f]*\S)?$ lets a control character through as first or last character
  // (\S matches them).
  { name: 'project name ending in NUL', method: 'POST', url: '/projects', payload: { name: 'trailing-nul\u0000', repo: 'https://example.com/n.git' }, expected: [400] },
  { name: 'project name starting with a control character', method: 'POST', url: '/projects', payload: { name: '\u0007bell', repo: 'https://example.com/n.git' }, expected: [400] },
  { name: 'project repo with NUL', method: 'POST', url: '/projects', payload: { name: 'nul-repo', repo: 'https://example.com/\u0000.git' }, expected: [400] },
  { name: 'project renamed with NUL', method: 'PATCH', url: '/projects/1', payload: { name: 'renamed\u0000' }, expected: [400] },
  { name: 'project repo changed to one with NUL', method: 'PATCH', url: '/projects/1', payload: { repo: 'https://example.com/\u0000' }, expected: [400] },
  { name: 'build branch with NUL', method: 'POST', url: '/projects/1/builds', payload: { branch: 'main\u0000' }, expected: [400] },
];

describe(`fuzz regressions (${testDb})`, () => {
  const t = useTestApp({ BUILD_CONCURRENCY: '0', UNDER_PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0' });
  const outcomes: { name: string; status: number; ok: boolean }[] = [];

  beforeAll(async () => {
    await injectAs(t.app, t.adminToken, { method: 'POST', url: '/projects', payload: { name: 'fuzz-regressions', repo: 'https://example.com/r.git' } });
    await injectAs(t.app, t.adminToken, { method: 'POST', url: '/projects/1/builds' });
  });

  afterAll(() => {
    const failed = outcomes.filter((o) => !o.ok);
    recordScenario({
      scenario: 'fuzz-regressions',
      db: testDb,
      what: `${CASES.length} named adversarial requests found by (or next to) the fuzzer, mostly NUL characters in text inputs.`,
      happened: failed.length ? `Wrong answers: ${failed.map((o) => `${o.name} → ${o.status}`).join('; ')}` : 'Every one answered as expected, with no 5xx.',
      ok: failed.length === 0,
      figures: { requests: outcomes.length, '5xx': outcomes.filter((o) => o.status >= 500).length, wrong: failed.length },
    });
  });

  it.each(CASES)('$name: $method $url answers $expected, never 5xx, and a refusal writes nothing', async ({ name, method, url, payload, expected }) => {
    const before = await snapshotDb(t.app.database);
    const response = await injectAs(t.app, t.adminToken, { method, url, ...(payload ? { payload } : {}) });
    outcomes.push({ name, status: response.statusCode, ok: expected.includes(response.statusCode) });
    expect(response.statusCode, response.body).toBeLessThan(500);
    expect(expected, `${method} ${url} → ${response.statusCode} ${response.body}`).toContain(response.statusCode);
    if (response.statusCode >= 400) {
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(ERROR_CODES).toContain(response.json<{ error: string }>().error);
      expect(changedTables(before, await snapshotDb(t.app.database))).toEqual([]);
    }
  });
});
