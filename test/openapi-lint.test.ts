/**
 * The live OpenAPI document passes `redocly lint` with the repository's redocly.yaml (the `recommended` ruleset, made
 * stricter on examples and operation ids): no error and no warning.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../src/project-root.js';
import { testDb, useTestApp } from './helper.js';

const run = promisify(execFile);

interface LintProblem {
  ruleId: string;
  severity: 'error' | 'warn';
  message: string;
  location: { pointer?: string }[];
}

describe(`OpenAPI lint (${testDb})`, () => {
  const ctx = useTestApp();
  const dir = mkdtempSync(join(tmpdir(), 'usine-openapi-lint-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('passes redocly lint (recommended ruleset, redocly.yaml) without errors or warnings', async () => {
    const response = await ctx.app.inject({ method: 'GET', url: '/apidocs/json' });
    expect(response.statusCode).toBe(200);
    const file = join(dir, 'openapi.json');
    writeFileSync(file, response.body);

    const redocly = join(projectRoot, 'node_modules', '.bin', 'redocly');
    // redocly exits 1 when it finds errors: the report on stdout is what matters.
    const { stdout } = await run(redocly, ['lint', file, '--config', join(projectRoot, 'redocly.yaml'), '--format=json'], {
      cwd: projectRoot,
      env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' },
      maxBuffer: 64 * 1024 * 1024,
    }).catch((error: { stdout?: string; stderr?: string }) => ({ stdout: error.stdout ?? '', stderr: error.stderr ?? '' }));

    const report = JSON.parse(stdout) as { totals: { errors: number; warnings: number }; problems: LintProblem[] };
    const problems = report.problems.map((p) => `${p.severity} ${p.ruleId} at ${p.location[0]?.pointer ?? '?'}: ${p.message}`);
    expect(problems).toEqual([]);
    expect(report.totals).toMatchObject({ errors: 0, warnings: 0 });
  }, 60_000);
});
