import type { IncomingHttpHeaders } from 'node:http';
import { Webhook } from 'standardwebhooks';

/** A delivery's body, as the Standard Webhooks specification shapes it. */
export interface WebhookPayload {
  type: string;
  timestamp: string;
  data: Record<string, unknown>;
}

/**
 * Verifies a delivery a receiver got, with the specification's reference library (`standardwebhooks`): throws on a
 * bad signature or an old timestamp, answers the payload otherwise.
 */
export const verifyWith = (secret: string, received: { headers: IncomingHttpHeaders; body: string }): WebhookPayload =>
  new Webhook(secret).verify(received.body, {
    'webhook-id': String(received.headers['webhook-id']),
    'webhook-timestamp': String(received.headers['webhook-timestamp']),
    'webhook-signature': String(received.headers['webhook-signature']),
  }) as WebhookPayload;
