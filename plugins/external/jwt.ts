import jwt from '@fastify/jwt';
import fp from 'fastify-plugin';
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

/** HS256 only, on signing and on verifying (no `alg: none`, no algorithm confusion); `iss` and `aud` checked. */
export default fp(
  async (fastify) => {
    const { JWT_SECRET, JWT_ISSUER, JWT_AUDIENCE, ACCESS_TOKEN_TTL } = fastify.config;
    await fastify.register(jwt, {
      secret: JWT_SECRET,
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
