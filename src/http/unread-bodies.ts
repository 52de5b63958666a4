import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';

/**
 * Requests answered before their body had arrived (a 401, 413 or 415 decided from the headers), by connection. Node
 * keeps reading and discarding the rest of such a body on a kept-alive connection; if that rest never comes, its
 * request timeout fires and would write a 408 after the answer the client already has. The client-error handler
 * (src/http/client-errors.ts) asks here and closes the connection silently instead.
 */
const answeredEarly = new WeakMap<Socket, IncomingMessage>();

/** Called with every request answered by a problem: remembered only if its body is still arriving. */
export function noteAnswered(request: IncomingMessage): void {
  if (!request.complete) answeredEarly.set(request.socket, request);
}

/** Whether the request still arriving on this connection has already been answered. */
export function answeredBeforeItsBody(socket: Socket): boolean {
  const request = answeredEarly.get(socket);
  return request !== undefined && !request.complete;
}
