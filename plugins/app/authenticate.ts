import type { FastifyRequest, onRequestHookHandler } from 'fastify';
import fp from 'fastify-plugin';
import type { ActiveCaller } from '../../src/auth/caller-cache.js';
import { VerifiedTokens } from '../../src/auth/verified-tokens.js';
import { roleRank, type Role } from '../../src/repositories/users.js';
import type { AccessTokenClaims } from '../external/jwt.js';

/** Who is calling, as the database says now (not as the token said when it was issued). */
export interface Caller {
  id: number;
  username: string;
  role: Role;
  /** The refresh-token family (login session) of the access token used: what `POST /logout` revokes. */
  familyId: string;
  /** When the access token used expires, in milliseconds since the epoch: what a long-lived response may not outlive. */
  expiresAt: number;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** onRequest hook: a valid bearer access token of an existing user and an unrevoked family, or 401. */
    authenticate: onRequestHookHandler;
    /** onRequest hook: authenticate, then 403 unless the caller's role is at least `role`. */
    requireRole(role: Role): onRequestHookHandler;
  }
  interface FastifyRequest {
    caller: Caller;
  }
}

type VerifiedAccessClaims = AccessTokenClaims & { exp: number };

/** The token of an `Authorization: Bearer <token>` header (scheme case-insensitive, RFC 7235), or why there is none. */
function bearerToken(header: string | undefined): string | { refused: string } {
  if (!header) return { refused: 'No Authorization was found in request.headers' };
  const space = header.indexOf(' ');
  if (space !== 6 || header.slice(0, 6).toLowerCase() !== 'bearer') return { refused: 'Format is Authorization: Bearer [token]' };
  const token = header.slice(7);
  if (token === '' || token.includes(' ')) return { refused: 'Format is Authorization: Bearer [token]' };
  return token;
}

export default fp(
  async (fastify) => {
    const unauthorized = (detail: string) => fastify.httpErrors.unauthorized(detail);
    const { callerCache } = fastify;
    const verifiedTokens = new VerifiedTokens<VerifiedAccessClaims>();

    /** The user and session of the request's verified access token, or the 401 to answer. */
    function accessClaims(request: FastifyRequest): { userId: number; familyId: string; expiresAt: number } | Error {
      const token = bearerToken(request.headers.authorization);
      if (typeof token !== 'string') return unauthorized(token.refused);
      let claims = verifiedTokens.get(token);
      if (!claims) {
        try {
          // Synchronous (HS256 with a static secret): the same verifier @fastify/jwt's request.jwtVerify() ends in,
          // without its per-request option merging, second decode and callback chain.
          claims = fastify.jwt.verify<VerifiedAccessClaims>(token);
        } catch (error) {
          const code = (error as { code?: unknown }).code;
          return unauthorized(code === 'FAST_JWT_EXPIRED' ? 'Authorization token expired' : `Authorization token is invalid: ${(error as Error).message}`);
        }
        verifiedTokens.remember(token, claims);
      }
      const id = Number(claims.sub);
      if (claims.typ !== 'access' || !Number.isSafeInteger(id) || typeof claims.fid !== 'string' || claims.fid === '') {
        return unauthorized('Not an access token');
      }
      return { userId: id, familyId: claims.fid, expiresAt: claims.exp * 1000 };
    }

    const revoked = () => unauthorized('The user of this token no longer exists or its session was revoked');
    const setCaller = (request: FastifyRequest, user: ActiveCaller, familyId: string, expiresAt: number) => {
      request.caller = { id: user.id, username: user.username, role: user.role, familyId, expiresAt };
    };

    /**
     * Authenticates, then calls `done` with the error to answer (or none). The database's answer, or the cache's
     * (plugins/app/caller-cache.ts) while nothing that could change it has happened: a deleted or demoted user, or a
     * logged-out or compromised session, loses access at once. A cached answer completes synchronously.
     */
    function identify(request: FastifyRequest, then: (error?: Error) => void): void {
      const token = accessClaims(request);
      if (token instanceof Error) return then(token);
      const { userId, familyId, expiresAt } = token;
      const hit = callerCache.cached(userId, familyId);
      if (hit) {
        setCaller(request, hit, familyId, expiresAt);
        return then();
      }
      callerCache.find(userId, familyId).then(
        (user) => {
          if (!user) return then(revoked());
          setCaller(request, user, familyId, expiresAt);
          then();
        },
        (error: Error) => then(error),
      );
    }

    const authenticate: onRequestHookHandler = (request, _reply, done) => identify(request, done);

    fastify.decorateRequest('caller', null as unknown as Caller);
    fastify.decorate('authenticate', authenticate);
    fastify.decorate(
      'requireRole',
      (role: Role): onRequestHookHandler =>
        (request, _reply, done) =>
          identify(request, (error) => {
            if (error) return done(error);
            if (roleRank(request.caller.role) < roleRank(role)) {
              return done(fastify.httpErrors.forbidden(`This needs the ${role} role; you are ${request.caller.role}`));
            }
            done();
          }),
    );
  },
  { name: 'authenticate', dependencies: ['jwt', 'sensible', 'repositories', 'caller-cache'] },
);
