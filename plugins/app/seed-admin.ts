import fp from 'fastify-plugin';

/**
 * The seed's first user: `admin`/`admin123` unless ADMIN_USERNAME / ADMIN_PASSWORD say otherwise, created only in a
 * database without any user. Once there is one, the admin is the users' business: an `admin` deleted (or renamed
 * away) stays gone across restarts, instead of coming back with whatever ADMIN_PASSWORD the environment still holds.
 */
export default fp(
  async (fastify) => {
    const { ADMIN_USERNAME, ADMIN_PASSWORD } = fastify.config;
    // Cheap check first, so that a restart of a populated database does not pay for hashing a password; the insert
    // below checks again, atomically, for replicas starting together.
    if (await fastify.usersRepository.hasAny()) return;
    const created = await fastify.usersRepository.createIntoEmpty({
      username: ADMIN_USERNAME,
      password_hash: await fastify.passwords.hash(ADMIN_PASSWORD),
      role: 'admin',
    });
    if (created) fastify.log.info({ username: ADMIN_USERNAME }, 'created the first admin user');
  },
  { name: 'seed-admin', dependencies: ['repositories', 'passwords'] },
);
