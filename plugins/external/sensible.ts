import sensible from '@fastify/sensible';
import fp from 'fastify-plugin';

/** `httpErrors` and `reply.notFound()` & co.: route code throws, the root error handler formats. */
export default fp(async (fastify) => fastify.register(sensible), { name: 'sensible' });
