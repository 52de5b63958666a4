import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  DEFAULT_ADMIN_PASSWORD,
  PUBLIC_DEVELOPMENT_JWT_SECRET,
  TEST_JWT_SECRET,
  loadConfig,
  parseDatabaseUrl,
} from '../src/config.js';
import { projectRoot } from '../src/project-root.js';

/** Runs `fn`, expects a ConfigError, and returns its message. */
function configErrorOf(fn: () => unknown): string {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ConfigError);
  expect((caught as Error).name).toBe('ConfigError');
  return (caught as Error).message;
}

const SECRET_32 = 'k'.repeat(32);

describe('loadConfig defaults', () => {
  it('applies every default on an empty environment', () => {
    const config = loadConfig({});
    // No JWT_SECRET: one is generated at start-up for the database (src/auth/jwt-secret.ts), never a public default.
    expect(config.JWT_SECRET).toBeUndefined();
    expect(config).toMatchObject({
      NODE_ENV: 'development',
      PORT: 5000,
      HOST: '0.0.0.0',
      JWT_ISSUER: 'usine',
      JWT_AUDIENCE: 'usine-api',
      ACCESS_TOKEN_TTL: 1800,
      ADMIN_USERNAME: 'admin',
      ADMIN_PASSWORD: DEFAULT_ADMIN_PASSWORD,
      BUILD_FAIL_RATE: 0.5,
      LOG_LEVEL: 'info',
    });
    expect(config.database).toEqual({ dialect: 'sqlite', path: './data/usine.db' });
    expect(DEFAULT_ADMIN_PASSWORD).toBe('admin123');
  });

  it('does not expose the raw DATABASE_URL / DB_URL, only the parsed database', () => {
    const config = loadConfig({ DATABASE_URL: 'sqlite:x.db' }) as unknown as Record<string, unknown>;
    expect(config).not.toHaveProperty('DATABASE_URL');
    expect(config).not.toHaveProperty('DB_URL');
  });

  it('converts numeric variables from their string form', () => {
    const config = loadConfig({ PORT: '8080', BUILD_FAIL_RATE: '0.25', ACCESS_TOKEN_TTL: '600' });
    expect(config.PORT).toBe(8080);
    expect(config.BUILD_FAIL_RATE).toBe(0.25);
    expect(config.ACCESS_TOKEN_TTL).toBe(600);
  });

  it('treats an empty variable as unset', () => {
    const config = loadConfig({ PORT: '', LOG_LEVEL: '', DATABASE_URL: '' });
    expect(config.PORT).toBe(5000);
    expect(config.LOG_LEVEL).toBe('info');
    expect(config.database).toEqual({ dialect: 'sqlite', path: './data/usine.db' });
  });

  it('ignores variables it does not know', () => {
    const config = loadConfig({ SOMETHING_ELSE: 'x', PATH: '/usr/bin' }) as unknown as Record<string, unknown>;
    expect(config).not.toHaveProperty('SOMETHING_ELSE');
    expect(config).not.toHaveProperty('PATH');
  });

  it('accepts every log level', () => {
    for (const level of ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']) {
      expect(loadConfig({ LOG_LEVEL: level }).LOG_LEVEL).toBe(level);
    }
  });
});

describe('database URLs', () => {
  it("accepts the seed's DB_URL as an alias", () => {
    expect(loadConfig({ DB_URL: 'sqlite:///app.db' }).database).toEqual({ dialect: 'sqlite', path: 'app.db' });
    expect(loadConfig({ DB_URL: 'postgres://u@h:5432/d' }).database).toEqual({ dialect: 'pg', url: 'postgres://u@h:5432/d' });
  });

  it('lets DATABASE_URL win over DB_URL', () => {
    const config = loadConfig({ DATABASE_URL: 'postgres://a@h:5432/winner', DB_URL: 'sqlite:///loser.db' });
    expect(config.database).toEqual({ dialect: 'pg', url: 'postgres://a@h:5432/winner' });
    const reverse = loadConfig({ DATABASE_URL: 'sqlite:winner.db', DB_URL: 'postgres://a@h:5432/loser' });
    expect(reverse.database).toEqual({ dialect: 'sqlite', path: 'winner.db' });
  });

  it.each([
    ['sqlite:./data/usine.db', { dialect: 'sqlite', path: './data/usine.db' }],
    ['sqlite:///app.db', { dialect: 'sqlite', path: 'app.db' }],
    ['sqlite:////var/lib/usine/app.db', { dialect: 'sqlite', path: '/var/lib/usine/app.db' }],
    ['sqlite://app.db', { dialect: 'sqlite', path: 'app.db' }],
    ['sqlite:app.db', { dialect: 'sqlite', path: 'app.db' }],
    [':memory:', { dialect: 'sqlite', path: ':memory:' }],
    ['sqlite::memory:', { dialect: 'sqlite', path: ':memory:' }],
    ['postgres://usine:usine@db:5432/usine', { dialect: 'pg', url: 'postgres://usine:usine@db:5432/usine' }],
    ['postgresql://usine:usine@db:5432/usine', { dialect: 'pg', url: 'postgres://usine:usine@db:5432/usine' }],
    ['postgresql+psycopg2://usine:usine@db:5432/usine', { dialect: 'pg', url: 'postgres://usine:usine@db:5432/usine' }],
  ] as const)('parseDatabaseUrl(%s)', (url, expected) => {
    expect(parseDatabaseUrl(url)).toEqual(expected);
    expect(loadConfig({ DATABASE_URL: url }).database).toEqual(expected);
  });

  it.each(['mysql://u@h/d', 'sqlite:', 'postgres://', 'http://example.com', 'just-a-path.db'])(
    'refuses %s with a message naming DATABASE_URL',
    (url) => {
      expect(configErrorOf(() => parseDatabaseUrl(url))).toContain('DATABASE_URL');
      expect(configErrorOf(() => loadConfig({ DATABASE_URL: url }))).toContain('DATABASE_URL');
    },
  );
});

describe('invalid values', () => {
  it('PORT=abc names PORT', () => {
    const message = configErrorOf(() => loadConfig({ PORT: 'abc' }));
    expect(message).toMatch(/\bPORT\b/);
    expect(message).not.toMatch(/LOG_LEVEL|BUILD_FAIL_RATE|JWT_SECRET/);
  });

  it.each(['70000', '-1', '50.5', '5e3', '0x10', '80abc'])('PORT=%s names PORT', (port) => {
    expect(configErrorOf(() => loadConfig({ PORT: port }))).toMatch(/\bPORT\b/);
  });

  it.each(['2', '-0.1', 'half', '0x1', '0.5abc'])('BUILD_FAIL_RATE=%s names BUILD_FAIL_RATE', (rate) => {
    expect(configErrorOf(() => loadConfig({ BUILD_FAIL_RATE: rate }))).toContain('BUILD_FAIL_RATE');
  });

  it('accepts BUILD_FAIL_RATE at its bounds', () => {
    expect(loadConfig({ BUILD_FAIL_RATE: '0' }).BUILD_FAIL_RATE).toBe(0);
    expect(loadConfig({ BUILD_FAIL_RATE: '1' }).BUILD_FAIL_RATE).toBe(1);
  });

  it('LOG_LEVEL=loud names LOG_LEVEL', () => {
    expect(configErrorOf(() => loadConfig({ LOG_LEVEL: 'loud' }))).toContain('LOG_LEVEL');
  });

  it('NODE_ENV=staging names NODE_ENV', () => {
    expect(configErrorOf(() => loadConfig({ NODE_ENV: 'staging' }))).toContain('NODE_ENV');
  });

  it('has the build engine defaults', () => {
    expect(loadConfig({})).toMatchObject({
      BUILD_CONCURRENCY: 4,
      BUILD_TIME_SCALE: 1,
      BUILD_LEASE_S: 30,
      BUILD_MAX_ATTEMPTS: 3,
      BUILD_QUEUE_LIMIT: 100,
      BUILD_DRAIN_S: 5,
      IDEMPOTENCY_TTL_S: 86_400,
      SSE_KEEPALIVE_S: 15,
    });
    expect(loadConfig({}).BUILD_SEED).toBeUndefined();
    expect(loadConfig({ BUILD_TIME_SCALE: '0', BUILD_CONCURRENCY: '0', BUILD_SEED: 'demo' })).toMatchObject({
      BUILD_TIME_SCALE: 0,
      BUILD_CONCURRENCY: 0,
      BUILD_SEED: 'demo',
    });
  });

  it.each([
    ['BUILD_CONCURRENCY', '-1'],
    ['BUILD_CONCURRENCY', '2.5'],
    ['BUILD_TIME_SCALE', '-0.5'],
    ['BUILD_LEASE_S', '0'],
    ['BUILD_QUEUE_LIMIT', '0'],
    ['BUILD_DRAIN_S', '9'],
    ['SSE_KEEPALIVE_S', '0'],
  ])('%s=%s is refused, naming it', (name, value) => {
    expect(configErrorOf(() => loadConfig({ [name]: value }))).toContain(name);
  });

  it('refuses a SHUTDOWN_DELAY_MS and BUILD_DRAIN_S that do not fit in the 10 s shutdown together', () => {
    const message = configErrorOf(() => loadConfig({ SHUTDOWN_DELAY_MS: '5000', BUILD_DRAIN_S: '5' }));
    expect(message).toContain('SHUTDOWN_DELAY_MS');
    expect(message).toContain('BUILD_DRAIN_S');
    expect(loadConfig({ SHUTDOWN_DELAY_MS: '4000', BUILD_DRAIN_S: '5' }).BUILD_DRAIN_S).toBe(5);
  });

  it('refuses timeouts that defeat each other: headers after the whole request, a log stream cut while idle', () => {
    const headers = configErrorOf(() => loadConfig({ HTTP_HEADERS_TIMEOUT_S: '40', HTTP_REQUEST_TIMEOUT_S: '30' }));
    expect(headers).toContain('HTTP_HEADERS_TIMEOUT_S');
    expect(headers).toContain('HTTP_REQUEST_TIMEOUT_S');
    const stream = configErrorOf(() => loadConfig({ SSE_KEEPALIVE_S: '60', HTTP_CONNECTION_TIMEOUT_S: '60' }));
    expect(stream).toContain('SSE_KEEPALIVE_S');
    expect(stream).toContain('HTTP_CONNECTION_TIMEOUT_S');
    expect(loadConfig({ HTTP_HEADERS_TIMEOUT_S: '30', SSE_KEEPALIVE_S: '59' })).toMatchObject({ HTTP_HEADERS_TIMEOUT_S: 30, SSE_KEEPALIVE_S: 59 });
  });

  it('names every bad variable at once', () => {
    const message = configErrorOf(() => loadConfig({ PORT: 'abc', LOG_LEVEL: 'loud', BUILD_FAIL_RATE: '2' }));
    expect(message).toMatch(/\bPORT\b/);
    expect(message).toContain('LOG_LEVEL');
    expect(message).toContain('BUILD_FAIL_RATE');
  });
});

describe('production safety', () => {
  const production = (env: Record<string, string>) => loadConfig({ NODE_ENV: 'production', ...env });

  it('refuses the default JWT_SECRET', () => {
    const message = configErrorOf(() => production({ ADMIN_PASSWORD: 'a-real-password' }));
    expect(message).toContain('JWT_SECRET');
    expect(message).not.toContain('ADMIN_PASSWORD');
  });

  it('refuses a 31-byte JWT_SECRET', () => {
    const secret = 'k'.repeat(31);
    expect(Buffer.byteLength(secret)).toBe(31);
    const message = configErrorOf(() => production({ JWT_SECRET: secret, ADMIN_PASSWORD: 'a-real-password' }));
    expect(message).toContain('JWT_SECRET');
    expect(message).not.toContain(secret);
  });

  it('counts bytes, not characters, in JWT_SECRET', () => {
    const secret = 'é'.repeat(16); // 16 characters, 32 bytes in UTF-8
    expect(Buffer.byteLength(secret)).toBe(32);
    expect(production({ JWT_SECRET: secret, ADMIN_PASSWORD: 'a-real-password' }).JWT_SECRET).toBe(secret);
  });

  it('refuses the default admin password', () => {
    const message = configErrorOf(() => production({ JWT_SECRET: SECRET_32 }));
    expect(message).toContain('ADMIN_PASSWORD');
    expect(message).not.toContain('JWT_SECRET');
    expect(configErrorOf(() => production({ JWT_SECRET: SECRET_32, ADMIN_PASSWORD: 'admin123' }))).toContain('ADMIN_PASSWORD');
  });

  it('names both problems when both are present', () => {
    const message = configErrorOf(() => production({}));
    expect(message).toContain('JWT_SECRET');
    expect(message).toContain('ADMIN_PASSWORD');
  });

  it('starts with a 32-byte secret and a custom admin password', () => {
    const config = production({ JWT_SECRET: SECRET_32, ADMIN_PASSWORD: 'a-real-password' });
    expect(config.NODE_ENV).toBe('production');
    expect(config.JWT_SECRET).toBe(SECRET_32);
    expect(config.ADMIN_PASSWORD).toBe('a-real-password');
  });

  it('does not apply the production rules outside production', () => {
    expect(loadConfig({ NODE_ENV: 'development' }).JWT_SECRET).toBeUndefined();
    expect(loadConfig({ NODE_ENV: 'development', JWT_SECRET: 'short' }).JWT_SECRET).toBe('short');
    expect(loadConfig({ NODE_ENV: 'test', JWT_SECRET: 'short' }).JWT_SECRET).toBe('short');
  });

  it('gives NODE_ENV=test without JWT_SECRET a fixed key, and no other environment', () => {
    expect(loadConfig({ NODE_ENV: 'test' }).JWT_SECRET).toBe(TEST_JWT_SECRET);
    expect(loadConfig({ NODE_ENV: 'development' }).JWT_SECRET).not.toBe(TEST_JWT_SECRET);
  });

  it('refuses the old public development JWT_SECRET outside tests (it is in old copies of .env.example)', () => {
    for (const NODE_ENV of ['development', 'production']) {
      const message = configErrorOf(() => loadConfig({ NODE_ENV, JWT_SECRET: PUBLIC_DEVELOPMENT_JWT_SECRET, ADMIN_PASSWORD: 'a-real-password' }));
      expect(message).toContain('JWT_SECRET');
      expect(message).not.toContain(PUBLIC_DEVELOPMENT_JWT_SECRET);
    }
  });
});

describe('the real entry point', () => {
  it('exits 1 with a message naming PORT when PORT=abc', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'usine-config-'));
    try {
      const tsx = join(projectRoot, 'node_modules', '.bin', 'tsx');
      const child = spawn(tsx, [join(projectRoot, 'src', 'main.ts')], {
        cwd, // no .env here, and nothing is written to the project
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: cwd, PORT: 'abc', DATABASE_URL: ':memory:' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const code = await new Promise<number | null>((resolve, reject) => {
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`usine did not exit within 15 s; stderr: ${stderr}`));
        }, 15_000);
        child.on('error', reject);
        child.on('exit', (exitCode) => {
          clearTimeout(timer);
          resolve(exitCode);
        });
      });
      expect(code).toBe(1);
      expect(stderr).toMatch(/\bPORT\b/);
      expect(stderr).not.toMatch(/^\s+at /m); // a message, not a stack trace
      expect(stdout).not.toMatch(/listening/i);
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  }, 20_000);
});
