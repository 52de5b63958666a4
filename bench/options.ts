/**
 * Command-line flags of `npm run bench` and the sizes they imply.
 *   --quick              short durations and fewer rows (a smoke run, under 2 minutes)
 *   --only=a,b           only these scenarios (names as printed; `builds` runs bench/builds.ts)
 *   --db=sqlite|pg|both  which databases (default both)
 *   --tsx                run src/ under tsx instead of the built server (dist/src/main.js, built by `npm run bench`'s prebench)
 *   --write / --no-write write BENCHMARKS.md and bench/ratios.svg, or not (default: write on a full run without --only;
 *                        a --quick or --only run only prints, so CI's smoke run leaves the tree clean)
 */
export type Dialect = 'sqlite' | 'pg';

export interface BenchOptions {
  quick: boolean;
  only?: Set<string>;
  dialects: Dialect[];
  write: boolean;
  /** Run dist/src/main.js (the default: what `npm start` runs) rather than src/main.ts under tsx (--tsx). */
  dist: boolean;
  /** Seconds measured per scenario, after `warmupS` seconds of the same load. */
  durationS: number;
  warmupS: number;
  connections: number;
  /** Alternations of a read and its minimal route (their durations add up to durationS). */
  rounds: number;
  /** Rows seeded: projects (each with a few builds) and the builds of the one big project. */
  projects: number;
  bigBuilds: number;
  sseClients: number;
  /** Builds followed at once by the SSE clients (clients / builds listeners per build). */
  sseBuilds: number;
}

export function parseOptions(argv: readonly string[]): BenchOptions {
  const flag = (name: string) => argv.find((arg) => arg === `--${name}` || arg.startsWith(`--${name}=`));
  const value = (name: string) => flag(name)?.split('=', 2)[1];
  const quick = flag('quick') !== undefined;
  const onlyText = value('only');
  const db = value('db') ?? 'both';
  if (!['sqlite', 'pg', 'both'].includes(db)) throw new Error(`--db must be sqlite, pg or both (got ${db})`);
  const unknown = argv.filter((arg) => arg.startsWith('--') && !/^--(quick|only|db|write|no-write|tsx)(=|$)/.test(arg));
  if (unknown.length > 0) throw new Error(`unknown flag(s): ${unknown.join(' ')}`);
  return {
    quick,
    only: onlyText ? new Set(onlyText.split(',').map((name) => name.trim()).filter(Boolean)) : undefined,
    dialects: db === 'both' ? ['sqlite', 'pg'] : [db as Dialect],
    dist: flag('tsx') === undefined,
    write: flag('write') !== undefined || (flag('no-write') === undefined && !quick && !onlyText),
    durationS: quick ? 2 : 10,
    warmupS: quick ? 0.5 : 3,
    connections: 10,
    rounds: quick ? 2 : 4,
    projects: quick ? 200 : 1000,
    bigBuilds: quick ? 100_000 : 1_000_000,
    sseClients: 200,
    sseBuilds: 10,
  };
}

/** True when the scenario runs under these options (`--only` absent, or naming it). */
export const selected = (options: BenchOptions, name: string) => !options.only || options.only.has(name);
