import fp from 'fastify-plugin';
import { LogFollowers } from '../../src/builds/log-followers.js';
import { CallerWatch } from '../../src/http/caller-watch.js';
import { StreamQuota } from '../../src/http/stream-quota.js';

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * Live log streams, shared by the build and job log routes: one quota (SSE_MAX_STREAMS_PER_USER per user,
     * SSE_MAX_STREAMS in all, whatever is followed), one watch over their callers' access, one set of followers.
     */
    logStreams: { quota: StreamQuota; followers: LogFollowers; callers: CallerWatch };
  }
}

/** How often open streams' callers are checked again: a revoked session or a deleted user ends them within this. */
const CALLER_CHECK_MS = 1000;
/** How often an open stream re-reads its log even without an event (an event lost to a reconnect must not stall it). */
const POLL_MS = 2000;
/** Sent first on a stream as `retry:`: how long a client waits before it reconnects. */
const RETRY_MS = 2000;

export default fp(
  async (fastify) => {
    const { config, callerCache, usersRepository } = fastify;
    const callers = new CallerWatch({
      intervalMs: CALLER_CHECK_MS,
      isLive: async (userId, familyId) => (await callerCache.find(userId, familyId)) !== undefined,
      reason: async (userId) => ((await usersRepository.findPublicById(userId)) ? 'session_revoked' : 'user_deleted'),
      onError: (error) => fastify.log.warn({ err: error }, 'could not check the callers of open log streams'),
    });
    const followers = new LogFollowers({
      events: fastify.buildEvents,
      callers,
      keepAliveMs: config.SSE_KEEPALIVE_S * 1000,
      retryMs: RETRY_MS,
      pollMs: POLL_MS,
    });
    fastify.decorate('logStreams', {
      quota: new StreamQuota({ perUser: config.SSE_MAX_STREAMS_PER_USER, total: config.SSE_MAX_STREAMS }),
      followers,
      callers,
    });
    fastify.addHook('preClose', async () => followers.closeAll());
  },
  { name: 'log-streams', dependencies: ['build-engine', 'caller-cache', 'repositories'] },
);
