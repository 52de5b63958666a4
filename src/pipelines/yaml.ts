/**
 * Pipeline definitions as YAML (a `.usine.yml`, written as users write a `.gitlab-ci.yml`), read safely:
 * - YAML 1.2 core schema only: no custom tags, and none of YAML 1.1's `!!binary`, `!!timestamp`, `!!set`…; a tag the
 *   schema does not know refuses the document instead of turning into a string;
 * - anchors and aliases (and `<<` merge keys) work, but their expansion is bounded (MAX_ALIAS_COUNT, the `yaml`
 *   package's own defence against "billion laughs" documents);
 * - one document per body; duplicate keys are reported with their path (JSON cannot say so, YAML can and must: a
 *   job defined twice silently losing one definition is the bug a linter exists to catch);
 * - too deeply nested input is refused, not a crash.
 * Plain domain code: no Fastify types. The body size is bounded by the caller.
 */
import {
  Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  type DocumentOptions,
  type Node,
  type ParseOptions,
  type SchemaOptions,
} from 'yaml';
import { pointer, type DefinitionProblem } from './definition.js';

/** Alias expansions one document may make; the `yaml` package's default, stated here because it is a defence. */
export const MAX_ALIAS_COUNT = 100;

/** The body is not YAML this API reads: each message says where (line and column) and why. */
export class YamlSyntaxError extends Error {
  constructor(readonly problems: DefinitionProblem[]) {
    super(problems.map((problem) => problem.message).join('; '));
    this.name = 'YamlSyntaxError';
  }
}

export interface ParsedYaml {
  value: unknown;
  /** Duplicate keys: the document parses, but it is not a valid definition. */
  problems: DefinitionProblem[];
}

const PARSE_OPTIONS: ParseOptions & DocumentOptions & SchemaOptions = {
  schema: 'core',
  customTags: [],
  resolveKnownTags: false,
  merge: true,
  uniqueKeys: false, // found below, with their paths
  strict: true,
  prettyErrors: false,
};

/** Text of a mapping key, as toJS would turn it into a property name. */
function keyText(key: unknown): string {
  if (isScalar(key)) return String(key.value);
  return String(key);
}

/** Duplicate keys of every mapping, found by walking the tree without recursion (nesting may be deep). */
function duplicateKeys(document: Document.Parsed, lines: LineCounter): DefinitionProblem[] {
  const problems: DefinitionProblem[] = [];
  const lineOf = (node: unknown) => {
    const range = (node as Node | null)?.range;
    return range ? lines.linePos(range[0]).line : 0;
  };
  const pending: { node: unknown; path: string[] }[] = [{ node: document.contents, path: [] }];
  while (pending.length > 0) {
    const { node, path } = pending.pop() as { node: unknown; path: string[] };
    if (isMap(node)) {
      const seen = new Map<string, unknown>();
      for (const pair of node.items) {
        const key = keyText(pair.key);
        const first = seen.get(key);
        if (key === '<<' && (isAlias(pair.value) || isMap(pair.value) || isSeq(pair.value))) {
          // A merge key: several are allowed, and their content is checked where the anchor was defined.
        } else if (first !== undefined) {
          const what = path.length === 1 && path[0] === 'jobs' ? `job ${'`'}${key}${'`'} is defined twice` : `duplicate key ${'`'}${key}${'`'}`;
          problems.push({ path: pointer(...path, key), message: `${what} (lines ${lineOf(first)} and ${lineOf(pair.key)})` });
        } else {
          seen.set(key, pair.key);
        }
        pending.push({ node: pair.value, path: [...path, key] });
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, index) => pending.push({ node: item, path: [...path, String(index)] }));
    }
  }
  // Found depth-first from the end: report them in document order.
  return problems.reverse();
}

/** Reads one YAML document. Throws YamlSyntaxError for anything that is not YAML this API accepts. */
export function parseYaml(text: string): ParsedYaml {
  const lines = new LineCounter();
  let document: Document.Parsed;
  try {
    document = parseDocument(text, { ...PARSE_OPTIONS, lineCounter: lines });
  } catch (error) {
    // The parser recurses on nesting; a stack overflow is the input's fault.
    if (error instanceof RangeError) throw new YamlSyntaxError([{ path: '', message: 'the YAML is too deeply nested' }]);
    throw error;
  }
  const refusals = [...document.errors, ...document.warnings].map((issue) => {
    const { line, col } = lines.linePos(issue.pos[0]);
    return { path: '', message: `line ${line}, column ${col}: ${issue.message}` };
  });
  if (refusals.length > 0) throw new YamlSyntaxError(refusals);
  const problems = duplicateKeys(document, lines);
  try {
    return { value: document.toJS({ maxAliasCount: MAX_ALIAS_COUNT }), problems };
  } catch (error) {
    if (error instanceof ReferenceError) {
      // "Excessive alias count indicates a resource exhaustion attack", or an alias to an anchor defined after it.
      throw new YamlSyntaxError([{ path: '', message: `the YAML's aliases expand too much or refer to nothing: ${error.message}` }]);
    }
    if (error instanceof RangeError) throw new YamlSyntaxError([{ path: '', message: 'the YAML is too deeply nested' }]);
    throw error;
  }
}

/** A definition as YAML: block style, with short lists of plain values (`needs`, `duration_s`) kept on one line. */
export function toYaml(value: unknown): string {
  const document = new Document(value);
  const pending: unknown[] = [document.contents];
  while (pending.length > 0) {
    const node = pending.pop();
    if (isMap(node)) for (const pair of node.items) pending.push(pair.value);
    else if (isSeq(node)) {
      if (node.items.every((item) => isScalar(item) && typeof item.value !== 'string')) node.flow = true;
      else if (node.items.every((item) => isScalar(item) && typeof item.value === 'string' && !/[\s,[\]{}#:]/.test(item.value))) node.flow = true;
      pending.push(...node.items);
    }
  }
  return document.toString({ lineWidth: 0, flowCollectionPadding: false });
}
