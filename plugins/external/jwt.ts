import jwt from '@fastify/jwt';
import fp from 'fastify-plugin';
import { resolveJwtSecret } from '../../src/auth/jwt-secret.js';
import type { Role } from '../../src/repositories/users.js';

export interface AccessTokenClaims {
  /** The user's id, as a string (RFC 7519). */
  sub: string;
  username: string;
  /** The role when the token was issued; authorization uses the user's current role. */
  role: Role;
  /** Always `access`: nothing else this service signs may pass as an access token. */
  typ: 'access';
  /** The refresh-token family (login session) it belongs to: revoking the family (logout, reuse) ends it at once. */
  fid: string;
  /** Unique per token (RFC 7519 `jti`), so two tokens issued in the same second still differ. */
  jti: string;
}

declare module '@fastify/jwt' {
  interface FastifyJWT {
    payload: AccessTokenClaims;
    user: AccessTokenClaims & { iat: number; exp: number; iss: string; aud: string };
  }
}

/**
 * HS256 only, on signing and on verifying (no `alg: none`, no algorithm confusion); `iss` and `aud` checked. The key is
 * JWT_SECRET, or one generated for the database or the process when it is unset (src/auth/jwt-secret.ts).
 */
export default fp(
  async (fastify) => {
    const { JWT_SECRET, JWT_ISSUER, JWT_AUDIENCE, ACCESS_TOKEN_TTL, database } = fastify.config;
    const { secret, source } = resolveJwtSecret(JWT_SECRET, database);
    if (source.kind === 'file') {
      fastify.log.info({ file: source.path, created: source.created }, 'JWT_SECRET not set: signing with the secret generated for this database');
      if (source.tooOpen) fastify.log.warn({ file: source.path }, 'the generated JWT secret file is readable by other users: chmod 600 it');
    } else if (source.kind === 'process') {
      fastify.log.warn(
        '!!! JWT_SECRET is not set and this database has no data directory: signing with a random secret made for this ' +
          'process only. Every token dies when it stops, and other processes refuse them. Set JWT_SECRET (32+ random bytes).',
      );
    }
    await fastify.register(jwt, {
      secret,
      sign: { algorithm: 'HS256', iss: JWT_ISSUER, aud: JWT_AUDIENCE, expiresIn: `${ACCESS_TOKEN_TTL}s` },
      // No `cache` here: plugins/app/authenticate.ts keeps verified tokens itself (src/auth/verified-tokens.ts), keyed
      // by the token rather than by a SHA-256 of it.
      verify: {
        algorithms: ['HS256'],
        allowedIss: JWT_ISSUER,
        allowedAud: JWT_AUDIENCE,
        requiredClaims: ['sub', 'exp', 'iss', 'aud'],
      },
    });
  },
  { name: 'jwt' },
);
