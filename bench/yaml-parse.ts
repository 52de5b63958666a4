/**
 * Time parseYaml (src/pipelines/yaml.ts) takes per KB of input, for doubling sizes of hostile shapes and of a realistic
 * definition: linear parsing keeps the figure flat as the size doubles. Not run by CI (timings, not assertions).
 *
 *   node --import tsx bench/yaml-parse.ts [--runs=5] [--max-kb=128]
 *
 * CPU time of this process (process.cpuUsage), the best of --runs runs, so that other processes on a loaded machine
 * inflate it less than wall-clock time. Sizes go past the 64 KiB body limit to show the trend; the routes never parse
 * more than 64 KiB.
 */
import { parseYaml } from '../src/pipelines/yaml.js';

const runs = Number(process.argv.find((arg) => arg.startsWith('--runs='))?.split('=')[1] ?? 5);
const maxKb = Number(process.argv.find((arg) => arg.startsWith('--max-kb='))?.split('=')[1] ?? 128);

/** `unit` repeated to about `bytes` bytes. */
const repeatTo = (unit: string, bytes: number) => unit.repeat(Math.max(1, Math.round(bytes / unit.length)));

/** A definition as people write one: five stages, jobs with needs, a short script, a duration and a condition. */
function realistic(jobs: number): string {
  const stages = ['build', 'test', 'package', 'deploy', 'verify'];
  const lines = [`stages: [${stages.join(', ')}]`, 'jobs:'];
  for (let i = 0; i < jobs; i++) {
    const stage = stages[Math.floor((i * stages.length) / jobs)] as string;
    lines.push(`  job-${i}:`, `    stage: ${stage}`);
    if (i >= 2) lines.push(`    needs: [job-${i - 1}, job-${i - 2}]`);
    lines.push('    script:', `      - npm ci --prefix packages/p${i}`, `      - npm run build --workspace p${i}`, `      - echo "done ${i}"`);
    lines.push('    duration_s: [1, 4]', `    when: ${i % 10 === 9 ? 'manual' : 'on_success'}`);
  }
  return lines.join('\n') + '\n';
}

/** Each shape: its text for about `bytes` bytes. */
const SHAPES: Record<string, (bytes: number) => string> = {
  "'[[[1]]]' repeated": (bytes) => repeatTo('[[[1]]]', bytes),
  "'{a: [1, {b: 2}]}, ' repeated": (bytes) => repeatTo('{a: [1, {b: 2}]}, ', bytes),
  "'\"' repeated": (bytes) => repeatTo('"', bytes),
  "'&a ' repeated": (bytes) => repeatTo('&a ', bytes),
  "'x: [' + '1,' repeated + ']'": (bytes) => `x: [${repeatTo('1,', bytes - 5)}]`,
  "'%YAML 1.2\\n' repeated": (bytes) => repeatTo('%YAML 1.2\n', bytes),
  "'a\\n...\\n' repeated": (bytes) => repeatTo('a\n...\n', bytes),
  'comment lines': (bytes) => repeatTo('# a comment line\n', bytes),
  'one multi-line plain scalar': (bytes) => `a: ${repeatTo('word\n  ', bytes)}`,
  // About 160 bytes a job: 200 jobs at 32 KB, 400 (twice LIMITS.jobs, refused later by the validator) at 64 KB.
  'realistic definition (jobs ∝ size)': (bytes) => realistic(Math.round(bytes / 160)),
};

function cpuMs(run: () => void): number {
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const before = process.cpuUsage();
    run();
    const spent = process.cpuUsage(before);
    best = Math.min(best, (spent.user + spent.system) / 1000);
  }
  return best;
}

/** What parseYaml made of the text: accepted, or the start of its first refusal. */
function outcome(text: string): string {
  try {
    parseYaml(text);
    return 'parsed';
  } catch (error) {
    return `refused: ${(error as Error).message.slice(0, 70)}`;
  }
}

const sizes: number[] = [];
for (let kb = 8; kb <= maxKb; kb *= 2) sizes.push(kb);

console.log(`parseYaml, CPU ms per KB (best of ${runs}), sizes ${sizes.join(', ')} KB\n`);
console.log(['shape'.padEnd(38), ...sizes.map((kb) => `${kb} KB`.padStart(9)), '  outcome at 64 KB'].join(''));
for (const [name, make] of Object.entries(SHAPES)) {
  // Warm the JIT on a small one first, so the first size is not charged for compiling.
  cpuMs(() => outcome(make(4096)));
  const cells = sizes.map((kb) => {
    const text = make(kb * 1024);
    const ms = cpuMs(() => outcome(text));
    return (ms / (text.length / 1024)).toFixed(3).padStart(9);
  });
  console.log([name.padEnd(38), ...cells, `  ${outcome(make(64 * 1024))}`].join(''));
}
