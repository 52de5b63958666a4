import { defineConfig } from 'drizzle-kit';

// One schema per dialect, one migration folder per dialect: `npm run db:generate` runs this file twice.
const dialect = process.env.DRIZZLE_DIALECT === 'pg' ? 'pg' : 'sqlite';

export default dialect === 'pg'
  ? defineConfig({ dialect: 'postgresql', schema: './src/db/schema/pg.ts', out: './drizzle/pg' })
  : defineConfig({ dialect: 'sqlite', schema: './src/db/schema/sqlite.ts', out: './drizzle/sqlite' });
