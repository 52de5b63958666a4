import { describe, expect, it } from 'vitest';
import { parseAllDocuments, Parser, type DocumentOptions, type ParseOptions, type SchemaOptions } from 'yaml';
import { tokenProblem } from '../../src/pipelines/yaml-tokens.js';

/** parseYaml's options (src/pipelines/yaml.ts). */
const OPTIONS: ParseOptions & DocumentOptions & SchemaOptions = { schema: 'core', customTags: [], resolveKnownTags: false, merge: true, strict: true, uniqueKeys: false };

/** Errors and warnings the `yaml` package itself reports for the text (a second document counts as one). */
function composerIssues(text: string): number {
  const documents = parseAllDocuments(text, { ...OPTIONS, prettyErrors: false });
  if (!Array.isArray(documents)) return 1;
  return documents.reduce((sum, document) => sum + document.errors.length + document.warnings.length, documents.length > 1 ? 1 : 0);
}

const problemOf = (text: string) => tokenProblem(new Parser().parse(text));

/** Valid YAML using most of what the language has: block and flow collections, anchors, tags, scalars of each style. */
const VALID = [
  'stages: [build, test]\ndefaults: &d {stage: build}\njobs:\n  a:\n    <<: *d\n    needs: []\n    script: |\n      echo hi\n      echo there\n  b: !!str x\n',
  '%YAML 1.2\n---\n&a [a, b, {c: d, e: [f, g]}, ? h : i]\n...\n# end\n',
  '- - x\n  - y\n- !!map {a: 1}\n- >-\n  folded\n  text\n- &z !!seq [1]\n- "multi\n  line"\n- key: &k\n    sub: 1\n  other: *k\n',
  '? complex key\n: value\n"quoted": \'single\'\nempty:\nlist:\n- a # comment\n-\n- [x, y,]\n',
];

describe('tokenProblem', () => {
  it('accepts valid YAML of every style', () => {
    for (const text of VALID) {
      expect(composerIssues(text), text).toBe(0);
      expect(problemOf(text), text).toBeUndefined();
    }
  });

  it('refuses only what the composer refuses too, and says where (each rule once)', () => {
    const cases: [text: string, offset: number, message: RegExp][] = [
      ['a: [1]]\n', 6, /^Unexpected flow-seq-end token in YAML stream: "]"$/],
      ['a: 1\n---\nb: 2\n', 5, /^a second YAML document starts here/],
      ['&a &b x\n', 3, /^a node can have at most one anchor$/],
      ['a: !t !u x\n', 6, /^a node can have at most one tag$/],
      ['"a" "b"\n', 4, /^Unexpected double-quoted-scalar at node end$/],
    ];
    for (const [text, offset, message] of cases) {
      expect(composerIssues(text), text).toBeGreaterThan(0);
      const problem = problemOf(text);
      expect(problem?.offset, text).toBe(offset);
      expect(problem?.message, text).toMatch(message);
    }
  });

  it('never refuses what the composer accepts: 3 000 random edits of valid YAML', () => {
    // A fixed seed: the same edits on every run, so a failure can be replayed.
    let seed = 42;
    const random = (below: number) => {
      seed = (seed * 1_103_515_245 + 12_345) & 0x7fffffff;
      return seed % below;
    };
    const pieces = ['[', ']', '{', '}', ',', ':', ' ', '\n', '- ', '? ', '&a ', '*a', '!t ', '"', "'", '#', '|', '>', '...', '---', '\t', 'x', '%YAML 1.2\n'];
    let refused = 0;
    for (let i = 0; i < 3000; i++) {
      let text = VALID[random(VALID.length)] as string;
      for (let edits = 1 + random(3); edits > 0; edits--) {
        const at = random(text.length + 1);
        const kind = random(3);
        if (kind === 0) text = text.slice(0, at) + pieces[random(pieces.length)] + text.slice(at);
        else if (kind === 1) text = text.slice(0, at) + text.slice(at + 1 + random(3));
        else text = text.slice(0, at) + text.slice(at, at + random(8)) + text.slice(at);
      }
      if (problemOf(text) === undefined) continue;
      refused++;
      expect(composerIssues(text), JSON.stringify(text)).toBeGreaterThan(0);
    }
    // The edits do break YAML: the property was tested on refusals, not vacuously.
    expect(refused).toBeGreaterThan(200);
  });
});
