import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveJwtSecret, secretFileOf } from '../../src/auth/jwt-secret.js';
import { PUBLIC_DEVELOPMENT_JWT_SECRET, parseDatabaseUrl } from '../../src/config.js';
import { projectRoot } from '../../src/project-root.js';
import { createServer } from '../../src/server.js';
import { bearer, login, testConfig, testDb } from '../helper.js';
import { createPersistentDatabase, type PersistentDatabase } from '../persistent-database.js';

const run = promisify(execFile);

/** An app as `npm start` runs it, without JWT_SECRET (NODE_ENV=development), with its log lines kept. */
async function startWithoutSecret(databaseUrl: string, lines: string[] = []): Promise<FastifyInstance> {
  const config = testConfig(databaseUrl, { NODE_ENV: 'development', LOG_LEVEL: 'info' });
  expect(config.JWT_SECRET).toBeUndefined();
  const app = await createServer(config, { logStream: { write: (line: string) => void lines.push(line) } });
  await app.ready();
  return app;
}

const claimsOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as Record<string, unknown>;

/** The same claims as `token`, signed with `secret` (HS256). */
function resign(token: string, secret: string): string {
  const [header, payload] = token.split('.');
  const signingInput = `${header}.${payload}`;
  return `${signingInput}.${createHmac('sha256', secret).update(signingInput).digest('base64url')}`;
}

describe(`JWT secret without JWT_SECRET (${testDb})`, () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  const track = <T extends { close(): Promise<unknown> } | PersistentDatabase>(thing: T): T => {
    cleanups.push(() => ('drop' in thing ? thing.drop() : thing.close()));
    return thing;
  };

  it(
    testDb === 'sqlite'
      ? 'two instances on the same SQLite file share a generated secret, kept in a 0600 file next to it'
      : 'two instances on the same PostgreSQL database sign with different per-process secrets, and say so loudly',
    async () => {
      const database = track(await createPersistentDatabase());
      const linesA: string[] = [];
      const a = track(await startWithoutSecret(database.url, linesA));
      const b = track(await startWithoutSecret(database.url));
      const token = await login(a);
      expect((await a.inject({ url: '/me', headers: bearer(token) })).statusCode).toBe(200);
      const onB = await b.inject({ url: '/me', headers: bearer(token) });
      const config = parseDatabaseUrl(database.url);
      if (config.dialect === 'sqlite') {
        expect(onB.statusCode, onB.body).toBe(200);
        const file = secretFileOf(config.path);
        expect(statSync(file).mode & 0o777).toBe(0o600);
        expect(readFileSync(file, 'utf8').trim()).toMatch(/^[0-9a-f]{64}$/);
        expect(linesA.join('')).toContain('signing with the secret generated for this database');
        // A restart reads the same file: the token still works.
        await b.close();
        const c = track(await startWithoutSecret(database.url));
        expect((await c.inject({ url: '/me', headers: bearer(token) })).statusCode).toBe(200);
      } else {
        expect(onB.statusCode).toBe(401);
        const warning = linesA.map((line) => JSON.parse(line) as { level: number; msg: string }).find((line) => line.msg.includes('JWT_SECRET is not set'));
        expect(warning?.level).toBe(40);
      }
    },
  );

  it('gives :memory: databases (no data directory) a secret per process, with a warning', async () => {
    const lines: string[] = [];
    const a = track(await startWithoutSecret(':memory:', lines));
    const b = track(await startWithoutSecret(':memory:'));
    const token = await login(a);
    expect((await a.inject({ url: '/me', headers: bearer(token) })).statusCode).toBe(200);
    // The same user and session exist in b too (id 1, and b's own session is not this one): the signature is refused.
    expect((await b.inject({ url: '/me', headers: bearer(token) })).statusCode).toBe(401);
    expect(lines.some((line) => line.includes('"level":40') && line.includes('JWT_SECRET is not set'))).toBe(true);
  });

  it('no longer accepts tokens signed with the old public development key', async () => {
    const database = track(await createPersistentDatabase());
    const app = track(await startWithoutSecret(database.url));
    const token = await login(app);
    expect((await app.inject({ url: '/me', headers: bearer(token) })).statusCode).toBe(200);
    // Same claims, same live session: only the key differs.
    expect(claimsOf(resign(token, PUBLIC_DEVELOPMENT_JWT_SECRET))).toEqual(claimsOf(token));
    const forged = await app.inject({ url: '/me', headers: bearer(resign(token, PUBLIC_DEVELOPMENT_JWT_SECRET)) });
    expect(forged.statusCode).toBe(401);
  });
});

describe('the generated secret file', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  const databaseIn = () => {
    const dir = mkdtempSync(join(tmpdir(), 'usine-secret-'));
    dirs.push(dir);
    return join(dir, 'nested', 'usine.db');
  };

  it('is created once by processes starting together: every one of them signs with the same secret', async () => {
    const path = databaseIn();
    const script = `import { resolveJwtSecret } from './src/auth/jwt-secret.ts'; process.stdout.write(resolveJwtSecret(undefined, { dialect: 'sqlite', path: ${JSON.stringify(path)} }).secret);`;
    const tsx = join(projectRoot, 'node_modules', '.bin', 'tsx');
    const outputs = await Promise.all(Array.from({ length: 4 }, () => run(tsx, ['--eval', script], { cwd: projectRoot })));
    const secrets = new Set(outputs.map((output) => output.stdout));
    expect(secrets.size).toBe(1);
    expect([...secrets][0]).toMatch(/^[0-9a-f]{64}$/);
    expect(readFileSync(secretFileOf(path), 'utf8').trim()).toBe([...secrets][0]);
    // No temporary file is left behind.
    expect(readdirSync(dirname(path))).toEqual([basename(secretFileOf(path))]);
  });

  it('is read back as it is, and a file holding anything else is refused with its name', () => {
    const path = databaseIn();
    const first = resolveJwtSecret(undefined, { dialect: 'sqlite', path });
    expect(first.source).toMatchObject({ kind: 'file', created: true, tooOpen: false });
    const again = resolveJwtSecret(undefined, { dialect: 'sqlite', path });
    expect(again).toMatchObject({ secret: first.secret, source: { kind: 'file', created: false } });

    writeFileSync(secretFileOf(path), 'not-a-secret');
    expect(() => resolveJwtSecret(undefined, { dialect: 'sqlite', path })).toThrow(secretFileOf(path));
  });

  it('is not made when JWT_SECRET is set, nor for :memory: or PostgreSQL', () => {
    const path = databaseIn();
    expect(resolveJwtSecret('configured', { dialect: 'sqlite', path })).toEqual({ secret: 'configured', source: { kind: 'configured' } });
    expect(existsSync(secretFileOf(path))).toBe(false);
    const memory = resolveJwtSecret(undefined, { dialect: 'sqlite', path: ':memory:' });
    expect(memory.source.kind).toBe('process');
    expect(resolveJwtSecret(undefined, { dialect: 'sqlite', path: ':memory:' }).secret).not.toBe(memory.secret);
    expect(resolveJwtSecret(undefined, { dialect: 'pg', url: 'postgres://nowhere/db' }).source.kind).toBe('process');
  });
});
