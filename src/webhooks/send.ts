/**
 * One HTTP POST of a webhook delivery, with everything a receiver cannot be trusted with bounded: one total deadline,
 * at most 4 KB of its answer read, no redirect followed, and no way for a failure to escape as an exception.
 */
import { request as httpRequest, type ClientRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import { StringDecoder } from 'node:string_decoder';

/** What is kept of a response body: enough to show a receiver's error message, never a receiver's whole page. */
export const RESPONSE_BODY_LIMIT = 4096;

export interface SendRequest {
  url: string;
  /** Sent as given (see webhookHeaders); `content-length` is computed here. */
  headers: Record<string, string>;
  body: string;
  /** One deadline for everything: connecting, sending, the response head and the part of the body that is read. */
  timeoutMs: number;
  /**
   * The host name resolution for the connection, where the caller's SSRF guard sits: it can refuse an address by
   * calling back with an error. Node never calls it for an IP literal, hence `refuseLiteral`.
   */
  lookup?: net.LookupFunction;
  /** Checked before connecting; a reason (a string) refuses the delivery: no connection is attempted. */
  refuseLiteral?: (url: URL) => string | undefined;
}

export interface SendOutcome {
  /** The receiver's status code, when it answered with one (a 3xx too: redirects are not followed). */
  status?: number;
  headers?: Record<string, string>;
  /** The first 4096 bytes of the response body, decoded as UTF-8 (a character cut at the limit is dropped). */
  body?: string;
  /**
   * Why the exchange did not complete: a network error, a timeout ("timed out after 10 s"), a refused address. It can
   * come with a status, when the receiver answered and then the body stalled or broke off.
   */
  error?: string;
  durationMs: number;
}

/**
 * POSTs `request.body` to `request.url` and says what came of it. Never throws, never follows a redirect.
 *
 * `agent: false`: a fresh connection for every delivery, closed with it (Connection: close). A keep-alive pool would
 * save a handshake between deliveries to the same receiver, but deliveries are spaced out (a queue, retries minutes
 * apart), so few sockets would ever be reused, while a slow or hostile receiver could keep its idle sockets (and a
 * pool slot) open between our requests and count against the next delivery's deadline when a stale one is reused. A
 * new connection is also resolved again, so `lookup`, the SSRF guard, sees every delivery's address, not only the
 * first one's. Nothing outlives the call: no socket to clean up at shutdown.
 */
export async function sendWebhook(request: SendRequest): Promise<SendOutcome> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  let url: URL;
  try {
    url = new URL(request.url);
  } catch {
    return { error: `invalid URL: ${request.url}`, durationMs: elapsed() };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return { error: `unsupported URL scheme ${url.protocol} (only http: and https:)`, durationMs: elapsed() };
  }
  if (!(request.timeoutMs > 0) || !Number.isFinite(request.timeoutMs)) {
    return { error: `invalid timeout: ${request.timeoutMs} ms`, durationMs: elapsed() };
  }
  try {
    const refusal = request.refuseLiteral?.(url);
    if (refusal !== undefined) return { error: refusal, durationMs: elapsed() };
  } catch (error) {
    return { error: `address check failed: ${describe(error)}`, durationMs: elapsed() };
  }
  const outcome = await exchange(url, request);
  return { ...outcome, durationMs: elapsed() };
}

type Exchange = Omit<SendOutcome, 'durationMs'>;

function exchange(url: URL, request: SendRequest): Promise<Exchange> {
  return new Promise<Exchange>((resolve) => {
    const body = Buffer.from(request.body, 'utf8');
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(request.headers)) {
      // The length is ours to say: a caller's own content-length (any case) would be sent twice, or wrong.
      if (name.toLowerCase() !== 'content-length') headers[name] = value;
    }
    headers['content-length'] = String(body.length);

    let settled = false;
    let clientRequest: ClientRequest | undefined;
    let response: IncomingMessage | undefined;
    let partial: Exchange = {};
    // Every path (answer, error, deadline) ends here once; whatever fires after is ignored.
    const finish = (result: Exchange) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
      // The rest of the body is not wanted and nothing reuses the socket (agent: false): close it now.
      response?.destroy();
      clientRequest?.destroy();
    };
    const timer = setTimeout(
      () => finish({ ...partial, error: `timed out after ${request.timeoutMs / 1000} s` }),
      request.timeoutMs,
    );

    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    try {
      clientRequest = send(
        url,
        { method: 'POST', headers, agent: false, ...(request.lookup ? { lookup: request.lookup } : {}) },
        (incoming) => {
          response = incoming;
          partial = { status: incoming.statusCode, headers: flattenHeaders(incoming.headers) };
          readLimited(incoming, {
            progress: (text) => (partial = { ...partial, body: text }),
            done: (text, error) => finish(error === undefined ? { ...partial, body: text } : { ...partial, body: text, error }),
          });
        },
      );
    } catch (error) {
      // Thrown synchronously: a header value Node refuses (a line break in it), an option it rejects.
      finish({ error: describe(error) });
      return;
    }
    clientRequest.on('error', (error) => finish({ ...partial, error: describe(error) }));
    clientRequest.end(body);
  });
}

/**
 * Reads `response` until its end or RESPONSE_BODY_LIMIT bytes, whichever comes first, then calls `done` once. The
 * decoder holds back a UTF-8 sequence cut by the limit, so the text never ends in a replacement character. `progress`
 * keeps what was read so far, for a deadline that strikes in the middle.
 */
function readLimited(
  response: IncomingMessage,
  { progress, done }: { progress: (text: string) => void; done: (text: string, error?: string) => void },
): void {
  const decoder = new StringDecoder('utf8');
  let text = '';
  let length = 0;
  response.on('data', (chunk: Buffer) => {
    const wanted = Math.min(chunk.length, RESPONSE_BODY_LIMIT - length);
    if (wanted > 0) {
      text += decoder.write(chunk.subarray(0, wanted));
      length += wanted;
      progress(text);
    }
    // The limit reached: stop here rather than buffer (or even download) the rest of a large answer.
    if (length >= RESPONSE_BODY_LIMIT) done(text);
  });
  response.on('end', () => done(text + decoder.end()));
  // A body broken off after the head: the status stands, the error says the rest is missing.
  response.on('error', (error) => done(text, `response body: ${describe(error)}`));
  response.on('aborted', () => done(text, 'response body: connection closed before its end'));
}

/** Response headers as single strings: a repeated header (set-cookie is always an array) joined by ', '. */
function flattenHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const flat: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) flat[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return flat;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
