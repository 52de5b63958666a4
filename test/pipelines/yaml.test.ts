import { afterEach, describe, expect, it, vi } from 'vitest';
import { Composer } from 'yaml';
import { parseYaml, toYaml, YamlSyntaxError } from '../../src/pipelines/yaml.js';
import { MAX_COLLECTION_ENTRIES, MAX_ENTRIES, MAX_TOKENS } from '../../src/pipelines/yaml-tokens.js';

function refusal(text: string): string {
  try {
    parseYaml(text);
  } catch (error) {
    expect(error).toBeInstanceOf(YamlSyntaxError);
    return (error as YamlSyntaxError).message;
  }
  throw new Error('parsed');
}

describe('parseYaml', () => {
  it('reads flow and block YAML, anchors and merge keys included', () => {
    const { value, problems } = parseYaml('stages: [build]\ndefaults: &d {stage: build}\njobs:\n  a:\n    <<: *d\n    needs: []\n');
    expect(problems).toEqual([]);
    expect(value).toEqual({ stages: ['build'], defaults: { stage: 'build' }, jobs: { a: { stage: 'build', needs: [] } } });
  });

  it('reports duplicate keys with their JSON pointer and lines, jobs by name', () => {
    const { problems } = parseYaml('stages: [s]\njobs:\n  a: {stage: s}\n  b: {stage: s, stage: t}\n  a: {stage: s}\n');
    expect(problems).toEqual([
      { path: '/jobs/b/stage', message: 'duplicate key `stage` (lines 4 and 4)' },
      { path: '/jobs/a', message: 'job `a` is defined twice (lines 3 and 5)' },
    ]);
  });

  it('refuses custom and YAML 1.1 tags, several documents and syntax errors, saying where', () => {
    expect(refusal('jobs: !reference [a]\n')).toMatch(/^line 1, column 7: .*tag/i);
    expect(refusal('when: !!timestamp 2001-12-14\n')).toMatch(/tag/i);
    expect(refusal('a: 1\n---\nb: 2\n')).toMatch(/line 2/);
    expect(refusal('stages: [a\n')).toMatch(/^line \d+, column \d+: /);
  });

  it('refuses an alias bomb (billion laughs) instead of expanding it', () => {
    const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 10; i++) lines.push(`a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]`);
    expect(refusal(lines.join('\n'))).toMatch(/aliases expand too much/);
  });

  it('refuses or survives deep nesting without crashing the process', () => {
    for (const deep of ['['.repeat(50_000) + ']'.repeat(50_000), 'a:\n'.repeat(1) + Array.from({ length: 5000 }, (_, i) => `${' '.repeat(i + 1)}b:`).join('\n')]) {
      try {
        parseYaml(deep);
      } catch (error) {
        expect(error).toBeInstanceOf(YamlSyntaxError);
      }
    }
  });

  it('keeps `__proto__` a plain key, not a prototype', () => {
    const { value } = parseYaml('__proto__: {polluted: true}\n');
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

/**
 * Shapes whose composing cost grew faster than their size (64 KiB of the first took the composer seconds: an error
 * object per token), each with the one refusal it now gets from the token check, before the composer.
 */
const HOSTILE: [name: string, text: string, refusal: RegExp][] = [
  ['closed flow sequences one after another', '[[[1]]]'.repeat(9362), /^line 1, column 8: Unexpected flow-seq-start at node end$/],
  ['flow maps separated by commas', '{a: [1, {b: 2}]}, '.repeat(3640), /^line 1, column 34: Unexpected flow-map-end token in YAML stream: "}"$/],
  ['a run of double quotes', '"'.repeat(65_536), /^line 1, column 3: Unexpected double-quoted-scalar at node end$/],
  ['a run of anchors', '&a '.repeat(21_845), /^line 1, column 4: a node can have at most one anchor$/],
  ['a valid list of 30 000 items', `x: [${'1,'.repeat(30_000)}]`, new RegExp(`^line 1, column 4: a collection holds more than ${MAX_COLLECTION_ENTRIES} entries`)],
  ['10 000 documents', 'a\n...\n'.repeat(10_000), /^line 3, column 1: a second YAML document starts here/],
  ['a flood of directives', '%A\n'.repeat(MAX_TOKENS + 1), new RegExp(`^line ${MAX_TOKENS + 1}, column 1: the YAML holds more than ${MAX_TOKENS} tokens`)],
];

describe('parseYaml in linear time: the composer only sees a bounded token tree', () => {
  afterEach(() => vi.restoreAllMocks());

  it('composes what it accepts (the spy below sees the composer)', () => {
    const compose = vi.spyOn(Composer.prototype, 'compose');
    parseYaml('stages: [build]\njobs: {a: {stage: build}}\n');
    expect(compose).toHaveBeenCalledTimes(1);
  });

  it.each(HOSTILE)('refuses %s at its first problem, before composing', (_name, text, expected) => {
    const compose = vi.spyOn(Composer.prototype, 'compose');
    let refused: unknown;
    try {
      parseYaml(text);
    } catch (error) {
      refused = error;
    }
    expect(refused).toBeInstanceOf(YamlSyntaxError);
    expect((refused as YamlSyntaxError).problems).toHaveLength(1);
    expect((refused as YamlSyntaxError).message).toMatch(expected);
    expect(compose).not.toHaveBeenCalled();
  });

  it(`bounds the entries of all collections at ${MAX_ENTRIES}, and of one at ${MAX_COLLECTION_ENTRIES}`, () => {
    // `m0: [1, …]` lines: one entry of the top map and `per` of its list each.
    const lists = (count: number, per: number) => Array.from({ length: count }, (_, i) => `m${i}: [${Array(per).fill('1').join(', ')}]`).join('\n');
    const atBound = lists(10, MAX_ENTRIES / 10 - 1);
    expect(Object.keys(parseYaml(atBound).value as object)).toHaveLength(10);
    expect(refusal(atBound + '\nm10: 1')).toMatch(new RegExp(`^line 10, column 5: the YAML holds more than ${MAX_ENTRIES} collection entries`));
    expect((parseYaml(lists(1, MAX_COLLECTION_ENTRIES)).value as { m0: unknown[] }).m0).toHaveLength(MAX_COLLECTION_ENTRIES);
    expect(refusal(lists(1, MAX_COLLECTION_ENTRIES + 1))).toMatch(/^line 1, column 5: a collection holds more than/);
    // Flow collections are counted before the parser, block ones in its token tree.
    expect(parseYaml('- 1\n'.repeat(MAX_COLLECTION_ENTRIES)).value).toHaveLength(MAX_COLLECTION_ENTRIES);
    expect(refusal('- 1\n'.repeat(MAX_COLLECTION_ENTRIES + 1))).toMatch(/^line 1, column 1: a collection holds more than/);
  });

  it('reads a realistic definition of 200 jobs well within the bounds', () => {
    const lines = ['stages: [build, test, deploy]', 'jobs:'];
    for (let i = 0; i < 200; i++) {
      lines.push(`  job-${i}:`, `    stage: ${['build', 'test', 'deploy'][i % 3]}`, `    needs: [job-${i}-a, job-${i}-b]`);
      lines.push('    script:', ...Array.from({ length: 5 }, (_, line) => `      - npm run step-${line} -- --shard=${i}`));
      lines.push('    duration_s: [1, 4]', '    when: on_success');
    }
    // 15 entries a job: about 3 000 in all, under a third of the bound, in 59 KiB.
    const text = lines.join('\n');
    expect(text.length).toBeLessThan(64 * 1024);
    expect(Object.keys((parseYaml(text).value as { jobs: object }).jobs)).toHaveLength(200);
  });
});

describe('toYaml', () => {
  it('writes YAML that reads back to the same value, short lists on one line', () => {
    const definition = { stages: ['build', 'test'], jobs: { 'e2e tests': { stage: 'test', needs: ['build it'], script: ['npm run e2e -- --shard=1'], duration_s: [1.5, 3] } } };
    const text = toYaml(definition);
    expect(text).toContain('stages: [build, test]\n');
    expect(text).toContain('duration_s: [1.5, 3]\n');
    expect(parseYaml(text)).toEqual({ value: definition, problems: [] });
  });
});
