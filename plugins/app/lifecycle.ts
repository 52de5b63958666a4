import fp from 'fastify-plugin';

/** Where the process is in its life, as the readiness probe reports it. */
export interface Lifecycle {
  /**
   * True from the moment shutdown begins: src/main.ts sets it on SIGTERM before `server.close()` (and before the
   * optional SHUTDOWN_DELAY_MS), and a `preClose` hook sets it for any other close. `GET /health/ready` then
   * answers 503 so that load balancers stop routing here while in-flight requests finish.
   */
  shuttingDown: boolean;
}

declare module 'fastify' {
  interface FastifyInstance {
    lifecycle: Lifecycle;
  }
}

export default fp(
  async (fastify) => {
    const lifecycle: Lifecycle = { shuttingDown: false };
    fastify.decorate('lifecycle', lifecycle);
    fastify.addHook('preClose', async () => {
      lifecycle.shuttingDown = true;
    });
  },
  { name: 'lifecycle' },
);
