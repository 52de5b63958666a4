import type { FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import fp from 'fastify-plugin';
import { roleRank, type Role } from '../../src/repositories/users.js';
import type { AccessTokenClaims } from '../external/jwt.js';

/** Who is calling, as the database says now (not as the token said when it was issued). */
export interface Caller {
  id: number;
  username: string;
  role: Role;
  /** The refresh-token family (login session) of the access token used: what `POST /logout` revokes. */
  familyId: string;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** onRequest hook: a valid bearer access token of an existing user and an unrevoked family, or 401. */
    authenticate: onRequestAsyncHookHandler;
    /** onRequest hook: authenticate, then 403 unless the caller's role is at least `role`. */
    requireRole(role: Role): onRequestAsyncHookHandler;
  }
  interface FastifyRequest {
    caller: Caller;
  }
}

export default fp(
  async (fastify) => {
    const unauthorized = (detail: string) => fastify.httpErrors.unauthorized(detail);

    async function authenticate(request: FastifyRequest): Promise<void> {
      let claims: AccessTokenClaims;
      try {
        claims = await request.jwtVerify<AccessTokenClaims>();
      } catch (error) {
        throw unauthorized(error instanceof Error ? error.message : 'invalid token');
      }
      const id = Number(claims.sub);
      if (claims.typ !== 'access' || !Number.isSafeInteger(id) || typeof claims.fid !== 'string' || claims.fid === '') {
        throw unauthorized('Not an access token');
      }
      // The database's answer, or the cache's (plugins/app/caller-cache.ts) while nothing that could change it has
      // happened: a deleted or demoted user, or a logged-out or compromised session, loses access at once.
      const user = await fastify.callerCache.find(id, claims.fid);
      if (!user) throw unauthorized('The user of this token no longer exists or its session was revoked');
      request.caller = { id: user.id, username: user.username, role: user.role, familyId: claims.fid };
    }

    fastify.decorateRequest('caller', null as unknown as Caller);
    fastify.decorate('authenticate', authenticate);
    fastify.decorate('requireRole', (role: Role): onRequestAsyncHookHandler => async (request) => {
      await authenticate(request);
      if (roleRank(request.caller.role) < roleRank(role)) {
        throw fastify.httpErrors.forbidden(`This needs the ${role} role; you are ${request.caller.role}`);
      }
    });
  },
  { name: 'authenticate', dependencies: ['jwt', 'sensible', 'repositories', 'caller-cache'] },
);
