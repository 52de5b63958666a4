import { randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { DatabaseConfig } from '../config.js';

/** 256 random bits, hex: what a generated secret file holds (and nothing else). */
const SECRET_TEXT = /^[0-9a-f]{64}$/;

export type JwtSecretSource =
  | { kind: 'configured' }
  /** Generated once for a SQLite database and kept in `path`: every process on that database signs alike. */
  | { kind: 'file'; path: string; created: boolean; tooOpen: boolean }
  /** Generated for this process alone: tokens die with it, and no other process accepts them. */
  | { kind: 'process' };

/** The secret file of a SQLite database: next to it, named after it (`data/usine.db` → `data/usine.db.jwt-secret`). */
export const secretFileOf = (databasePath: string) => `${databasePath}.jwt-secret`;

/**
 * The HS256 key to sign with when JWT_SECRET is not set (outside production: the config refuses that there).
 * There is no public development key any more: a server listening on 0.0.0.0 with a key anyone can read signs tokens
 * anyone can forge. Instead:
 * - a SQLite database on disk gets a random secret in a 0600 file next to it, created once: later starts, and other
 *   processes on the same file, read it back, so tokens survive restarts and work across processes as they would
 *   with JWT_SECRET;
 * - PostgreSQL and `:memory:` have no data directory here: the secret is random per process (the caller logs a
 *   warning, since replicas then refuse each other's tokens and a restart logs everyone out).
 */
export function resolveJwtSecret(configured: string | undefined, database: DatabaseConfig): { secret: string; source: JwtSecretSource } {
  if (configured !== undefined) return { secret: configured, source: { kind: 'configured' } };
  if (database.dialect === 'sqlite' && database.path !== ':memory:') {
    const path = secretFileOf(database.path);
    const { secret, created } = readOrCreateSecretFile(path);
    return { secret, source: { kind: 'file', path, created, tooOpen: (statSync(path).mode & 0o077) !== 0 } };
  }
  return { secret: randomBytes(32).toString('hex'), source: { kind: 'process' } };
}

/**
 * Reads the secret file, or creates it if there is none. Creation cannot race: the secret is written in full to a
 * private temporary file, which is then hard-linked to its final name. link(2) fails if the name exists (as O_EXCL
 * does), and the name only ever appears with its whole content, so of processes starting together exactly one
 * creates the file and every other reads that one's secret, never a half-written file.
 */
function readOrCreateSecretFile(path: string): { secret: string; created: boolean } {
  mkdirSync(dirname(path), { recursive: true });
  const existing = readSecret(path);
  if (existing !== undefined) return { secret: existing, created: false };
  const candidate = randomBytes(32).toString('hex');
  const temporary = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  writeFileSync(temporary, `${candidate}\n`, { flag: 'wx', mode: 0o600 });
  try {
    linkSync(temporary, path);
    return { secret: candidate, created: true };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const winner = readSecret(path);
    if (winner === undefined) throw new Error(`${path} appeared while this process created it, but it cannot be read`, { cause: error });
    return { secret: winner, created: false };
  } finally {
    unlinkSync(temporary);
  }
}

/** The file's secret; undefined if there is no file; an error naming the file if it holds anything else. */
function readSecret(path: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const secret = text.trim();
  if (!SECRET_TEXT.test(secret)) {
    throw new Error(`${path} does not hold a generated JWT secret (64 hex digits): delete it to have a new one made, or set JWT_SECRET`);
  }
  return secret;
}
