/**
 * Byte-offset arithmetic on build logs. Offsets are counted in bytes of the log's UTF-8 encoding, which is what a
 * poller can count on its side (`Content-Length`, `X-Log-Size`) whatever characters the log holds.
 */

const NEWLINE = 0x0a;

/** The log as UTF-8 bytes. */
export const logBytes = (log: string): Buffer => Buffer.from(log, 'utf8');

/** The bytes after `offset` (empty when `offset` is at or past the end). */
export function sliceFrom(bytes: Buffer, offset: number): Buffer {
  return offset >= bytes.length ? bytes.subarray(bytes.length) : bytes.subarray(Math.max(0, offset));
}

/** A UTF-8 continuation byte (10xxxxxx): never the first byte of a character. */
const isContinuation = (byte: number | undefined) => byte !== undefined && (byte & 0xc0) === 0x80;

/** `offset`, moved forward to the start of a character if it falls inside a multibyte one. */
export function charBoundary(bytes: Buffer, offset: number): number {
  let at = Math.max(0, offset);
  while (at < bytes.length && isContinuation(bytes[at])) at++;
  return at;
}

export interface LogLine {
  /** The line's text, without its line feed. */
  text: string;
  /** Byte offset just past the line (and its line feed): where to resume after it. */
  end: number;
}

/**
 * The whole lines that start at or after byte `offset`: every line up to and including the last line feed.
 * With `final` (the log will not grow any more) a last line without a line feed is included too.
 * `next` is where the next call should start: just past the last line returned, or `offset` when there is none.
 */
export function linesFrom(bytes: Buffer, offset: number, final = false): { lines: LogLine[]; next: number } {
  const start = charBoundary(bytes, offset);
  const lines: LogLine[] = [];
  let at = start;
  while (at < bytes.length) {
    const newline = bytes.indexOf(NEWLINE, at);
    if (newline === -1) {
      if (final) {
        lines.push({ text: bytes.toString('utf8', at, bytes.length), end: bytes.length });
        at = bytes.length;
      }
      break;
    }
    lines.push({ text: bytes.toString('utf8', at, newline), end: newline + 1 });
    at = newline + 1;
  }
  return { lines, next: lines.length > 0 ? at : Math.max(offset, 0) };
}

export interface ByteRange {
  start: number;
  /** Inclusive, as in `Content-Range`. */
  end: number;
}

/** RFC 9110 optional whitespace: space and horizontal tab. */
const isOws = (code: number) => code === 0x20 || code === 0x09;
const isDigit = (code: number) => code >= 0x30 && code <= 0x39;

/**
 * A cursor over a header value that reads it once, left to right: every step moves forward, so parsing a value of n
 * characters costs O(n) whatever it holds. (The regex this replaces backtracked over runs of blanks: 15,000 spaces and
 * a stray character blocked the event loop for ~0.4 s.)
 */
class HeaderScanner {
  at = 0;
  constructor(private readonly text: string) {}

  skipBlanks(): void {
    while (this.at < this.text.length && isOws(this.text.charCodeAt(this.at))) this.at++;
  }

  /** Consumes `literal` (ASCII, compared case-insensitively) if the text continues with it. */
  take(literal: string): boolean {
    if (this.text.slice(this.at, this.at + literal.length).toLowerCase() !== literal) return false;
    this.at += literal.length;
    return true;
  }

  /** The run of decimal digits here, possibly empty. */
  digits(): string {
    const start = this.at;
    while (this.at < this.text.length && isDigit(this.text.charCodeAt(this.at))) this.at++;
    return this.text.slice(start, this.at);
  }

  get done(): boolean {
    return this.at === this.text.length;
  }
}

/**
 * A `Range` header's single byte range over a representation of `size` bytes (RFC 9110 §14.1.2):
 * - `undefined`: no usable range (absent, another unit, several ranges, malformed): serve the whole log (200);
 * - `'unsatisfiable'`: a well-formed range that starts at or past the end (416);
 * - a range, clamped to the log: serve it as 206.
 * Blanks (spaces, tabs) are tolerated around each part. Linear in the header's length: see HeaderScanner.
 */
export function parseByteRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | undefined {
  if (!header) return undefined;
  const scan = new HeaderScanner(header);
  scan.skipBlanks();
  if (!scan.take('bytes')) return undefined;
  scan.skipBlanks();
  if (!scan.take('=')) return undefined;
  scan.skipBlanks();
  const first = scan.digits();
  scan.skipBlanks();
  if (!scan.take('-')) return undefined;
  scan.skipBlanks();
  const last = scan.digits();
  scan.skipBlanks();
  if (!scan.done) return undefined;
  if (first === '' && last === '') return undefined;
  if (first === '') {
    // Suffix range: the last N bytes.
    const length = Number(last);
    if (length === 0) return 'unsatisfiable';
    if (size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - length), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? Infinity : Number(last);
  if (end < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return { start, end: Math.min(end, size - 1) };
}
