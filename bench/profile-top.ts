/**
 * The hottest spots of a V8 CPU profile (BENCH_CPU_PROF=<dir> npm run bench …, or node --cpu-prof): self time per
 * function and per package/file, idle and GC shown apart.
 *
 *   node --import tsx bench/profile-top.ts <file.cpuprofile> [--top=25] [--skip=<s>]
 *
 * --skip leaves out the first seconds of the profile (start-up: module loading, schema compilation), so that what
 * remains is the process under load.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const file = process.argv[2];
if (!file) throw new Error('usage: bench/profile-top.ts <file.cpuprofile> [--top=25] [--skip=<s>]');
const top = Number(process.argv.find((arg) => arg.startsWith('--top='))?.split('=')[1] ?? 25);
const skipUs = Number(process.argv.find((arg) => arg.startsWith('--skip='))?.split('=')[1] ?? 0) * 1e6;
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const selfUs = new Map<number, number>();
let elapsedUs = 0;
profile.samples.forEach((id, index) => {
  const delta = profile.timeDeltas[index] ?? 0;
  elapsedUs += delta;
  if (elapsedUs >= skipUs) selfUs.set(id, (selfUs.get(id) ?? 0) + delta);
});
const total = [...selfUs.values()].reduce((sum, us) => sum + us, 0);

/** `node_modules/<pkg>` or the repository-relative file, or the V8 pseudo-frame. */
const where = (url: string) => {
  if (!url) return '(native/V8)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  if (url.startsWith('node:')) return url;
  return url.replace(/^file:\/\/.*?\/(src|plugins|routes|bench|test)\//, '$1/');
};

const functions = new Map<string, number>();
const places = new Map<string, number>();
for (const [id, us] of selfUs) {
  const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
  const place = where(url);
  const key = `${functionName || '(anonymous)'}  ${place}${url ? `:${lineNumber + 1}` : ''}`;
  functions.set(key, (functions.get(key) ?? 0) + us);
  places.set(place === '(native/V8)' ? functionName || place : place, (places.get(place === '(native/V8)' ? functionName || place : place) ?? 0) + us);
}

const show = (title: string, entries: Map<string, number>) => {
  console.log(`\n${title}`);
  for (const [key, us] of [...entries].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${((us / total) * 100).toFixed(1).padStart(5)} %  ${(us / 1000).toFixed(0).padStart(7)} ms  ${key}`);
  }
};
console.log(`${file}: ${(total / 1e6).toFixed(1)} s sampled`);
show('Self time by package / file', places);
show('Self time by function', functions);
