import closeWithGrace from 'close-with-grace';
import { config as loadDotenv } from 'dotenv';
import { ConfigError, loadConfig, type Config } from './config.js';
import { createServer } from './server.js';

loadDotenv({ quiet: true });

let config: Config;
try {
  config = loadConfig();
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(`usine: ${error.message}`);
  process.exit(1);
}

const server = await createServer(config);

closeWithGrace({ delay: 10_000 }, async ({ signal, err }) => {
  if (err) server.log.error({ err }, 'shutting down after an error');
  else server.log.info({ signal }, 'shutting down');
  await server.close();
});

try {
  await server.listen({ port: config.PORT, host: config.HOST });
} catch (error) {
  server.log.fatal({ err: error }, 'could not start');
  process.exit(1);
}
