import fp from 'fastify-plugin';

/** The seed's first user: `admin`/`admin123` unless ADMIN_USERNAME / ADMIN_PASSWORD say otherwise. */
export default fp(
  async (fastify) => {
    const { ADMIN_USERNAME, ADMIN_PASSWORD } = fastify.config;
    if (await fastify.usersRepository.findByUsername(ADMIN_USERNAME)) return;
    await fastify.usersRepository.createIfAbsent({
      username: ADMIN_USERNAME,
      password_hash: await fastify.passwords.hash(ADMIN_PASSWORD),
      role: 'admin',
    });
    fastify.log.info({ username: ADMIN_USERNAME }, 'created the first admin user');
  },
  { name: 'seed-admin', dependencies: ['repositories', 'passwords'] },
);
