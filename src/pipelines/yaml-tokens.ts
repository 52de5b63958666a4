/**
 * The first check of untrusted YAML, on the `yaml` package's token tree (its CST: `new Parser().parse(text)`, linear
 * in the text) before its composer turns that tree into nodes. The composer is where hostile input costs: it makes an
 * error object (with a stack trace) for every token it cannot place, so that 64 KiB of `[[[1]]]` or of `"` costs it
 * tens of thousands of them, and a valid 30 000-item list costs 30 000 nodes a definition never needs. This check
 * walks the tree once, without recursion, and stops at the first of:
 * - an error token of the parser (`Unexpected flow-seq-end token…`): the first syntax error, with its offset;
 * - a second document;
 * - what the composer would refuse token by token: a second anchor, tag, indicator or comma before one node, or
 *   anything but blanks and comments after a node (a run of `"` parses as one string followed by thousands of others);
 * - more entries in one collection, in all collections, or more tokens, than any definition within LIMITS needs.
 * So the composer only ever sees a bounded tree, and refuses it at most a few times.
 * Plain domain code: no Fastify types.
 */
import type { CST } from 'yaml';
import { LIMITS } from './definition.js';

/**
 * Entries (list items and `key: value` pairs) of one collection: five times the longest list a definition may hold
 * (jobs, needs), so that a list a little too long is still refused by the validator, which names it.
 */
export const MAX_COLLECTION_ENTRIES = 5 * Math.max(LIMITS.jobs, LIMITS.needs, LIMITS.stages, LIMITS.scriptLines);
/**
 * Entries of all collections. A realistic 200-job definition (stage, two needs, five script lines, duration, when)
 * holds about 3 000 in 59 KiB, and 64 KiB of YAML as people write it fewer than 10 000; only a contrived one (200 jobs
 * of 50 one-letter script lines each, in flow style) goes beyond, and it is refused with this reason.
 */
export const MAX_ENTRIES = 10_000;
/**
 * Tokens the walk visits: nodes (keys, values, collections) and, at the top level, directives and `...` markers. A
 * definition has about two per entry (a key and its value); this bound stops what the entry bounds miss, a flood of
 * top-level tokens. (What precedes or follows one node is bounded by propsProblem and endProblem.)
 */
export const MAX_TOKENS = 4 * MAX_ENTRIES;

export interface TokenProblem {
  /** Offset in the text, for a line and column. */
  offset: number;
  message: string;
}

/** Tokens the composer accepts anywhere between nodes. */
const BLANK_TYPES: ReadonlySet<string> = new Set(['space', 'newline', 'comment']);

/** Work of the walk: a token, or a list of source tokens before a node (its properties) or after it (its end). */
type Pending = CST.Token | { list: 'props' | 'end'; tokens: readonly CST.Token[] };

function errorProblem(token: CST.ErrorToken): TokenProblem {
  // Worded as the composer words it.
  return { offset: token.offset, message: token.source ? `${token.message}: ${JSON.stringify(token.source)}` : token.message };
}

/**
 * What precedes a node: blanks, and at most one anchor, one tag, one indicator (`-`, `?`, `:`, `---`) and one comma.
 * The composer refuses any repetition (and any other token), so refusing it here refuses nothing it accepts.
 */
function propsProblem(props: readonly CST.Token[]): TokenProblem | undefined {
  const seen = new Set<string>();
  for (const token of props) {
    if (token.type === 'error') return errorProblem(token);
    if (BLANK_TYPES.has(token.type)) continue;
    if (seen.has(token.type)) {
      const what = token.type === 'anchor' ? 'anchor' : token.type === 'tag' ? 'tag' : `${token.type} token`;
      return { offset: token.offset, message: `a node can have at most one ${what}` };
    }
    seen.add(token.type);
  }
  return undefined;
}

/** What follows a node: blanks and comments only (the composer's resolveEnd refuses anything else). */
function endProblem(end: readonly CST.Token[]): TokenProblem | undefined {
  for (const token of end) {
    if (token.type === 'error') return errorProblem(token);
    if (!BLANK_TYPES.has(token.type)) return { offset: token.offset, message: `Unexpected ${token.type} at node end` };
  }
  return undefined;
}

/**
 * The first reason (in document order) to refuse the token stream before composing it, or undefined. Linear in the
 * number of tokens, and stops once a bound is passed.
 */
export function tokenProblem(tokens: Iterable<CST.Token>): TokenProblem | undefined {
  let documents = 0;
  let entries = 0;
  let counted = 0;
  /** Depth-first, in document order: children are pushed last first. */
  const pending: Pending[] = [];
  for (const top of tokens) {
    // The composer skips these between documents.
    if (BLANK_TYPES.has(top.type) || top.type === 'byte-order-mark') continue;
    if (top.type === 'document' && ++documents > 1) {
      return { offset: top.offset, message: 'a second YAML document starts here: a definition is one document' };
    }
    pending.push(top);
    while (pending.length > 0) {
      const work = pending.pop() as Pending;
      if ('list' in work) {
        const problem = work.list === 'props' ? propsProblem(work.tokens) : endProblem(work.tokens);
        if (problem) return problem;
        continue;
      }
      if (++counted > MAX_TOKENS) {
        return { offset: work.offset, message: `the YAML holds more than ${MAX_TOKENS} tokens: far more than a definition needs` };
      }
      switch (work.type) {
        case 'error':
          return errorProblem(work);
        case 'document':
          if (work.end) pending.push({ list: 'end', tokens: work.end });
          if (work.value) pending.push(work.value);
          pending.push({ list: 'props', tokens: work.start });
          break;
        case 'doc-end':
        case 'alias':
        case 'scalar':
        case 'single-quoted-scalar':
        case 'double-quoted-scalar':
          if (work.end) pending.push({ list: 'end', tokens: work.end });
          break;
        case 'block-scalar':
          // Its header (`|`, `>-`…) then blanks and a comment.
          pending.push({ list: 'end', tokens: work.props.slice(1) });
          break;
        case 'block-map':
        case 'block-seq':
        case 'flow-collection': {
          const { items } = work;
          if (items.length > MAX_COLLECTION_ENTRIES) {
            return { offset: work.offset, message: `a collection holds more than ${MAX_COLLECTION_ENTRIES} entries: far more than a definition needs` };
          }
          entries += items.length;
          if (entries > MAX_ENTRIES) {
            return { offset: work.offset, message: `the YAML holds more than ${MAX_ENTRIES} collection entries: far more than a definition needs` };
          }
          if (work.type === 'flow-collection') {
            // The closing bracket, then what follows the collection. A missing or wrong bracket is the composer's to say.
            const [close, ...rest] = work.end;
            const closes = close?.type === 'flow-seq-end' || close?.type === 'flow-map-end';
            pending.push({ list: 'end', tokens: closes ? rest : work.end });
          }
          for (let i = items.length - 1; i >= 0; i--) {
            const { start, key, sep, value } = items[i] as CST.CollectionItem;
            if (value) pending.push(value);
            if (sep) pending.push({ list: 'props', tokens: sep });
            if (key) pending.push(key);
            pending.push({ list: 'props', tokens: start });
          }
          break;
        }
        default:
          // Directives and source tokens at the top level: counted, and the composer's to judge.
          break;
      }
    }
  }
  return undefined;
}
