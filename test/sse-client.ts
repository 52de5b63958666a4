/**
 * A small server-sent events client for tests: `fetch` with a streaming body reader and a parser that follows the
 * HTML standard's event-stream interpretation rules, keeping comments (keep-alives) too, which EventSource hides.
 */

import http from 'node:http';

export type SseItem =
  | { kind: 'event'; event: string; id: string | undefined; data: string; at: number }
  | { kind: 'comment'; text: string; at: number }
  | { kind: 'retry'; ms: number; at: number };

export type SseEventItem = Extract<SseItem, { kind: 'event' }>;

/** Incremental parser: feed it decoded text as it arrives, it returns what each chunk completed. */
export class SseParser {
  private buffer = '';
  private data: string[] = [];
  private event = '';
  private id: string | undefined;
  private sawField = false;
  /** The last id seen (what a browser would send back as Last-Event-ID). */
  lastEventId: string | undefined;

  push(text: string): SseItem[] {
    this.buffer += text;
    const items: SseItem[] = [];
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      if (!match) break;
      // A lone \r at the very end may be the first half of \r\n: wait for more.
      if (match[0] === '\r' && match.index === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      const item = this.line(line);
      if (item) items.push(item);
    }
    return items;
  }

  private line(line: string): SseItem | undefined {
    const at = Date.now();
    if (line === '') return this.dispatch(at);
    if (line.startsWith(':')) return { kind: 'comment', text: line.slice(1).replace(/^ /, ''), at };
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
    this.sawField = true;
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    else if (field === 'id' && !value.includes('\0')) this.id = value;
    else if (field === 'retry' && /^\d+$/.test(value)) return { kind: 'retry', ms: Number(value), at };
    return undefined;
  }

  private dispatch(at: number): SseItem | undefined {
    const { data, event, id, sawField } = this;
    this.data = [];
    this.event = '';
    this.sawField = false;
    if (id !== undefined) this.lastEventId = id;
    if (!sawField || data.length === 0) return undefined;
    return { kind: 'event', event: event || 'message', id: this.lastEventId, data: data.join('\n'), at };
  }
}

export interface OpenedStream {
  /** The answer's status and headers (its body is read by the stream itself). */
  response: Response;
  /** Everything received so far, in order. */
  items: SseItem[];
  /** The raw text received so far. */
  readonly raw: string;
  /** Resolves when the server ends the stream (or it is aborted or fails). */
  closed: Promise<void>;
  isClosed(): boolean;
  events(): SseEventItem[];
  /** Waits until `predicate` holds for a received item; rejects after `timeoutMs` or if the stream closes first. */
  waitFor(predicate: (item: SseItem) => boolean, timeoutMs?: number): Promise<SseItem>;
  /** Waits for the stream to close; rejects after `timeoutMs`. */
  waitClosed(timeoutMs?: number): Promise<void>;
  /** Cuts the connection, as a client that goes away does. */
  abort(): void;
}

export interface OpenOptions {
  /**
   * `fetch` (default) or `http` (node:http, no connection reuse). Use `http` to test a client that hangs up: after an
   * aborted fetch, Node 20's fetch (undici) at once opens a fresh connection to the server and sends nothing on it,
   * which holds `server.close()` until that connection times out.
   */
  transport?: 'fetch' | 'http';
}

interface Opened {
  response: Response;
  /** The next chunk of the body, or undefined at its end. */
  read(): Promise<Uint8Array | undefined>;
  abort(): void;
}

async function openWithFetch(url: string, headers: Record<string, string>): Promise<Opened> {
  const controller = new AbortController();
  const response = await fetch(url, { headers, signal: controller.signal });
  const reader = response.body?.getReader();
  return {
    response,
    read: async () => {
      if (!reader) return undefined;
      const { value, done } = await reader.read();
      return done ? undefined : value;
    },
    abort: () => controller.abort(),
  };
}

function openWithHttp(url: string, headers: Record<string, string>): Promise<Opened> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { headers, agent: false }, (message) => {
      const responseHeaders = new Headers();
      for (const [name, value] of Object.entries(message.headers)) {
        for (const one of Array.isArray(value) ? value : [value ?? '']) responseHeaders.append(name, one);
      }
      const chunks = message[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
      resolve({
        response: new Response(null, { status: message.statusCode ?? 0, headers: responseHeaders }),
        read: async () => {
          const { value, done } = await chunks.next();
          return done ? undefined : value;
        },
        abort: () => request.destroy(),
      });
    });
    request.once('error', reject);
  });
}

/** GETs `url` as an event stream and reads it in the background; a non-stream answer's body is not read. */
export async function openEventStream(url: string, headers: Record<string, string> = {}, options: OpenOptions = {}): Promise<OpenedStream> {
  const open = options.transport === 'http' ? openWithHttp : openWithFetch;
  const { response, read, abort } = await open(url, { accept: 'text/event-stream', ...headers });
  const parser = new SseParser();
  const items: SseItem[] = [];
  let raw = '';
  let done = false;
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const waiter of [...waiters]) waiter();
  };

  const closed = (async () => {
    if (!(response.headers.get('content-type') ?? '').startsWith('text/event-stream')) return;
    const decoder = new TextDecoder('utf-8');
    try {
      for (let chunk = await read(); chunk !== undefined; chunk = await read()) {
        const text = decoder.decode(chunk, { stream: true });
        raw += text;
        items.push(...parser.push(text));
        notify();
      }
    } catch {
      // Aborted or cut: the stream is over either way.
    }
  })().finally(() => {
    done = true;
    notify();
  });

  return {
    response,
    items,
    get raw() {
      return raw;
    },
    closed,
    isClosed: () => done,
    events: () => items.filter((item): item is SseEventItem => item.kind === 'event'),
    waitFor(predicate, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = items.find(predicate);
          if (found) finish(() => resolve(found));
          else if (done) finish(() => reject(new Error(`stream closed before the awaited item; got ${JSON.stringify(items)}`)));
        };
        const timer = setTimeout(
          () => finish(() => reject(new Error(`no awaited item within ${timeoutMs} ms; got ${JSON.stringify(items)}`))),
          timeoutMs,
        );
        const finish = (settle: () => void) => {
          clearTimeout(timer);
          waiters.delete(check);
          settle();
        };
        waiters.add(check);
        check();
      });
    },
    waitClosed(timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`stream still open after ${timeoutMs} ms; got ${JSON.stringify(items)}`)), timeoutMs);
        void closed.then(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
    abort,
  };
}
