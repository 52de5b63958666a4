import { PassThrough } from 'node:stream';

/**
 * Server-sent events (https://html.spec.whatwg.org/multipage/server-sent-events.html) written to a Node stream that a
 * route hands to `reply.send()`, so that Fastify's hooks (request id, CORS, security headers, metrics) apply as to
 * any other response and Fastify destroys the stream when the client goes away.
 */

export const SSE_CONTENT_TYPE = 'text/event-stream';

/** Response headers of an event stream: never cached, never buffered by a proxy (nginx honours X-Accel-Buffering). */
export const SSE_HEADERS = {
  'content-type': SSE_CONTENT_TYPE,
  'cache-control': 'no-cache',
  'x-accel-buffering': 'no',
} as const;

export interface SseEvent {
  /** Event type; a client's `onmessage` gets the events without one. */
  event?: string;
  /** The client sends it back as `Last-Event-ID` when it reconnects. */
  id?: string | number;
  /** Reconnection delay the client should use, in milliseconds. */
  retry?: number;
  /** Payload; a text with line breaks becomes several `data:` lines, which the client joins with `\n`. */
  data?: string;
}

const LINE_BREAK = /\r\n|\r|\n/;

/** A field value may hold no line break: it would end the field (and could forge another one). */
const oneLine = (value: string) => value.replace(/[\r\n]+/g, ' ');

/** One event, in the wire format: its fields, then the blank line that dispatches it. */
export function formatEvent({ event, id, retry, data }: SseEvent): string {
  let text = '';
  if (event !== undefined) text += `event: ${oneLine(event)}\n`;
  if (id !== undefined) text += `id: ${oneLine(String(id))}\n`;
  if (retry !== undefined) text += `retry: ${Math.max(0, Math.trunc(retry))}\n`;
  if (data !== undefined) for (const line of data.split(LINE_BREAK)) text += `data: ${line}\n`;
  return `${text}\n`;
}

/** A comment: clients ignore it, proxies and load balancers see traffic on an idle connection. */
export const formatComment = (comment: string): string =>
  `${comment
    .split(LINE_BREAK)
    .map((line) => `: ${line}\n`)
    .join('')}\n`;

/** Does the `Accept` header ask for an event stream (and not refuse it with `q=0`)? */
export function acceptsEventStream(accept: string | undefined): boolean {
  if (!accept) return false;
  return accept.split(',').some((range) => {
    const [type = '', ...params] = range.split(';').map((part) => part.trim().toLowerCase());
    if (type !== SSE_CONTENT_TYPE) return false;
    const q = params.find((param) => param.startsWith('q='));
    return q === undefined || Number(q.slice(2)) > 0;
  });
}

export interface SseStreamOptions {
  /** Milliseconds between keep-alive comments; 0 for none. */
  keepAliveMs: number;
  /** Sent first, as `retry:`: how long a client waits before reconnecting. */
  retryMs?: number;
}

/**
 * An open event stream. `stream` is what the route sends; `onClose` callbacks run exactly once, whether the stream
 * ended (`end()`) or the client disconnected (Fastify destroys the stream), so that listeners and timers never leak.
 */
export class SseStream {
  readonly stream = new PassThrough();
  private keepAlive: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly closeCallbacks: (() => void)[] = [];

  constructor({ keepAliveMs, retryMs }: SseStreamOptions) {
    this.stream.once('close', () => this.cleanUp());
    // A write after the client left is not an error worth crashing for: the close handler tidies up.
    this.stream.on('error', () => this.cleanUp());
    if (retryMs !== undefined) this.write(formatEvent({ retry: retryMs }));
    if (keepAliveMs > 0) {
      this.keepAlive = setInterval(() => this.comment('keep-alive'), keepAliveMs);
      this.keepAlive.unref();
    }
  }

  /** False once the stream ended or the client went away: nothing more will be written. */
  get isOpen(): boolean {
    return !this.closed && this.stream.writable;
  }

  send(event: SseEvent): boolean {
    return this.write(formatEvent(event));
  }

  comment(text: string): boolean {
    return this.write(formatComment(text));
  }

  /** Ends the stream once what was written has been sent. */
  end(): void {
    if (this.closed) return;
    this.cleanUp();
    this.stream.end();
  }

  /** Runs `callback` when the stream closes, for whatever reason (at once if it is already closed). */
  onClose(callback: () => void): void {
    if (this.closed) callback();
    else this.closeCallbacks.push(callback);
  }

  private write(text: string): boolean {
    if (!this.isOpen) return false;
    this.stream.write(text);
    return true;
  }

  private cleanUp(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.keepAlive);
    for (const callback of this.closeCallbacks.splice(0)) callback();
  }
}
