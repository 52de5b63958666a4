import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Static } from '@sinclair/typebox';
import fp from 'fastify-plugin';
import type { Role } from '../../src/repositories/users.js';
import type { TokenPair } from '../../src/schemas/auth.js';

export interface TokenSubject {
  id: number;
  username: string;
  role: Role;
}

export interface Tokens {
  /**
   * Signs an access token and stores a new refresh token, both in `familyId` (a new family, i.e. a new login
   * session, when omitted). Undefined when the user no longer exists.
   */
  issue(user: TokenSubject, familyId?: string): Promise<Static<typeof TokenPair> | undefined>;
  /** What is stored for a refresh token: its SHA-256, hex. */
  hashRefreshToken(token: string): string;
}

declare module 'fastify' {
  interface FastifyInstance {
    tokens: Tokens;
  }
}

/** Refresh tokens are 256 random bits, base64url: opaque, and never a JWT. */
const REFRESH_TOKEN_BYTES = 32;

export default fp(
  async (fastify) => {
    const { ACCESS_TOKEN_TTL, REFRESH_TOKEN_TTL } = fastify.config;
    const hashRefreshToken = (token: string) => createHash('sha256').update(token, 'utf8').digest('hex');

    const tokens: Tokens = {
      hashRefreshToken,
      async issue(user, familyId = randomUUID()) {
        const refresh_token = randomBytes(REFRESH_TOKEN_BYTES).toString('base64url');
        const stored = await fastify.refreshTokensRepository.create({
          user_id: user.id,
          family_id: familyId,
          token_hash: hashRefreshToken(refresh_token),
          expires_at: new Date(Date.now() + REFRESH_TOKEN_TTL * 1000),
        });
        if (!stored) return undefined;
        const access_token = await fastify.jwt.sign({
          sub: String(user.id),
          username: user.username,
          role: user.role,
          typ: 'access',
          fid: familyId,
          jti: randomUUID(),
        });
        return {
          access_token,
          token_type: 'bearer' as const,
          expires_in: ACCESS_TOKEN_TTL,
          refresh_token,
          refresh_expires_in: REFRESH_TOKEN_TTL,
        };
      },
    };
    fastify.decorate('tokens', tokens);
  },
  { name: 'tokens', dependencies: ['jwt', 'repositories'] },
);
