import { describe, expect, it } from 'vitest';
import { parseYaml, toYaml, YamlSyntaxError } from '../../src/pipelines/yaml.js';

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

describe('toYaml', () => {
  it('writes YAML that reads back to the same value, short lists on one line', () => {
    const definition = { stages: ['build', 'test'], jobs: { 'e2e tests': { stage: 'test', needs: ['build it'], script: ['npm run e2e -- --shard=1'], duration_s: [1.5, 3] } } };
    const text = toYaml(definition);
    expect(text).toContain('stages: [build, test]\n');
    expect(text).toContain('duration_s: [1.5, 3]\n');
    expect(parseYaml(text)).toEqual({ value: definition, problems: [] });
  });
});
