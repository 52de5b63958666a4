/**
 * Pipeline definitions as YAML (a `.usine.yml`, written as users write a `.gitlab-ci.yml`), read safely:
 * - YAML 1.2 core schema only: no custom tags, and none of YAML 1.1's `!!binary`, `!!timestamp`, `!!set`…; a tag the
 *   schema does not know refuses the document instead of turning into a string;
 * - anchors and aliases (and `<<` merge keys) work, but their expansion is bounded (MAX_ALIAS_COUNT, the `yaml`
 *   package's own defence against "billion laughs" documents);
 * - one document per body; duplicate keys are reported with their path (JSON cannot say so, YAML can and must: a
 *   job defined twice silently losing one definition is the bug a linter exists to catch);
 * - deeply nested input is refused before the parser sees it (textProblem): the `yaml` package recurses on nesting
 *   and slows down with it — 240 KB of `[` took it 5 s of CPU, and a few thousand compact `- - - …` ran the process out
 *   of memory — while a definition nests five levels deep;
 * - linear time: the text is tokenized first (the package's CST parser, linear), and the token tree is refused at its
 *   first syntax error or past the bounds of ./yaml-tokens.ts before the composer, where hostile input costs, sees it.
 *   A flow collection's entries are also counted before the parser (textProblem): 64 KiB of `1,` make it 160 000
 *   objects, and the garbage collector's share of building them grows with their number.
 * Plain domain code: no Fastify types. The body size is bounded by the caller.
 */
import {
  Composer,
  Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  Parser,
  type CST,
  type DocumentOptions,
  type Node,
  type ParseOptions,
  type SchemaOptions,
} from 'yaml';
import { pointer, type DefinitionProblem } from './definition.js';
import { MAX_COLLECTION_ENTRIES, tokenProblem } from './yaml-tokens.js';

/** Alias expansions one document may make; the `yaml` package's default, stated here because it is a defence. */
export const MAX_ALIAS_COUNT = 100;

/** Flow collections (`[`, `{`) open at once, and compact indicators (`- - x`) on one line: far beyond any definition. */
export const MAX_NESTING = 32;
/** Syntax problems reported, at most. */
export const MAX_SYNTAX_PROBLEMS = 10;
/** Leading spaces of a line: 16 levels of 4-space indentation. */
export const MAX_INDENT = 64;

/**
 * Why the text nests too deeply, or holds too long a flow collection, to be handed to the parser, or undefined. One
 * pass, conservative: quoted scalars and comments are skipped, so brackets and commas in them do not count; a plain
 * scalar with 32 unclosed brackets would be refused. (In a flow collection every comma separates two entries.)
 */
function textProblem(text: string): string | undefined {
  let flow = 0;
  /** Commas of each open flow collection, and where it opened. */
  const open: { commas: number; line: number; column: number }[] = [];
  let lineStart = 0;
  let line = 1;
  let atLineStart = true;
  let indent = 0;
  let compact = 0;
  /** The last character that was not a blank: a quote opens a quoted scalar only where a scalar may start. */
  let previous = '\n';
  for (let i = 0; i < text.length; i++) {
    const char = text[i] as string;
    if (char === '\n') {
      line++;
      lineStart = i + 1;
      previous = char;
      atLineStart = true;
      indent = 0;
      compact = 0;
      continue;
    }
    if (atLineStart) {
      if (char === ' ') {
        if (++indent > MAX_INDENT) return `the YAML nests too deeply: line ${line} is indented more than ${MAX_INDENT} spaces`;
        continue;
      }
      // `- `, `? ` and `: ` at the head of a line each open one more collection.
      if ((char === '-' || char === '?' || char === ':') && (text[i + 1] === ' ' || text[i + 1] === '\t')) {
        if (++compact > MAX_NESTING) return `the YAML nests too deeply: line ${line} nests more than ${MAX_NESTING} collections`;
        previous = char;
        i++;
        continue;
      }
      atLineStart = false;
    }
    if (char === '[' || char === '{') {
      if (++flow > MAX_NESTING) return `the YAML nests too deeply: line ${line}: flow collections nest more than ${MAX_NESTING} deep`;
      open.push({ commas: 0, line, column: i - lineStart + 1 });
    } else if (char === ']' || char === '}') {
      flow = Math.max(0, flow - 1);
      open.pop();
    } else if (char === ',' && flow > 0) {
      const collection = open[open.length - 1] as (typeof open)[number];
      if (++collection.commas > MAX_COLLECTION_ENTRIES) {
        // Worded as ./yaml-tokens.ts words it for block collections.
        return `line ${collection.line}, column ${collection.column}: a collection holds more than ${MAX_COLLECTION_ENTRIES} entries: far more than a definition needs`;
      }
    } else if ((char === '"' || char === "'") && '\n-?:[{,'.includes(previous)) {
      // Skip the quoted scalar (it may span lines): `\"` escapes in double quotes, `''` in single ones.
      for (i++; i < text.length && text[i] !== char; i++) {
        if (text[i] === '\n') {
          line++;
          lineStart = i + 1;
        } else if (char === '"' && text[i] === '\\') i++;
      }
    } else if (char === '#' && (i === 0 || /\s/.test(text[i - 1] ?? ''))) {
      while (i + 1 < text.length && text[i + 1] !== '\n') i++;
    }
    if (char !== ' ' && char !== '\t') previous = char;
  }
  return undefined;
}

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

/** The stream's tokens, each also pushed to `kept` as it passes. */
function* keptIn(kept: CST.Token[], stream: Iterable<CST.Token>): Generator<CST.Token> {
  for (const token of stream) {
    kept.push(token);
    yield token;
  }
}

/** Reads one YAML document. Throws YamlSyntaxError for anything that is not YAML this API accepts. */
export function parseYaml(text: string): ParsedYaml {
  const shapeProblem = textProblem(text);
  if (shapeProblem) throw new YamlSyntaxError([{ path: '', message: shapeProblem }]);
  const lines = new LineCounter();
  const at = (offset: number) => {
    const { line, col } = lines.linePos(offset);
    return `line ${line}, column ${col}`;
  };
  let document: Document.Parsed;
  try {
    // What parseDocument does, with the token tree checked between its two stages. The check reads the parser's
    // top-level tokens as they come, so that a refusal (a second document…) also stops the parser.
    const tokens: CST.Token[] = [];
    const refused = tokenProblem(keptIn(tokens, new Parser(lines.addNewLine).parse(text)));
    if (refused) throw new YamlSyntaxError([{ path: '', message: `${at(refused.offset)}: ${refused.message}` }]);
    // One document at most (tokenProblem), and one even for an empty text (forceDoc).
    [document] = Array.from(new Composer(PARSE_OPTIONS).compose(tokens, true, text.length)) as [Document.Parsed];
  } catch (error) {
    // The parser recurses on nesting; a stack overflow is the input's fault.
    if (error instanceof RangeError) throw new YamlSyntaxError([{ path: '', message: 'the YAML is too deeply nested' }]);
    throw error;
  }
  // The first few say what to fix: the composer sees a bounded token tree, but may still find a problem per entry.
  const refusals = [...document.errors, ...document.warnings]
    .slice(0, MAX_SYNTAX_PROBLEMS)
    .map((issue) => ({ path: '', message: `${at(issue.pos[0])}: ${issue.message}` }));
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
