/**
 * Signing of outgoing webhooks, after the Standard Webhooks specification (https://www.standardwebhooks.com/): a
 * receiver can check a delivery with any of its reference libraries. A secret is `whsec_` + the base64 of the key
 * bytes; the signed content is `${msgId}.${timestampSeconds}.${body}`; a signature is `v1,` + the base64 of its
 * HMAC-SHA256, and the `webhook-signature` header holds one or several of them separated by a space.
 */
import { createHmac, randomBytes } from 'node:crypto';

const SECRET_PREFIX = 'whsec_';
const SECRET_BYTES = 32;
const MESSAGE_ID_PREFIX = 'msg_';
/** Crockford's base32 (no I, L, O, U: nothing to misread when an id is copied by hand), as in ULID. */
const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const TIME_CHARS = 10;
const RANDOM_BYTES = 10;

/** A new endpoint secret: `whsec_` + the base64 of 32 random bytes (the 256 bits of an HMAC-SHA256 key). */
export function newSecret(): string {
  return SECRET_PREFIX + randomBytes(SECRET_BYTES).toString('base64');
}

/**
 * A new message id: `msg_` + 26 characters of Crockford base32, laid out as a ULID: 10 characters of the creation time
 * in ms, then 16 characters (80 bits) of randomness. The random part alone makes ids unique (a collision needs about
 * 2^40 ids in the same millisecond); the time prefix makes ids sort by creation, so a delivery table indexed by them
 * grows at its end and a receiver's logs list them in order. The time it reveals is in `webhook-timestamp` anyway.
 * `nowMs` is there for tests.
 */
export function newMessageId(nowMs: number = Date.now()): string {
  let time = Math.max(0, Math.floor(nowMs));
  let timePart = '';
  for (let index = 0; index < TIME_CHARS; index++) {
    timePart = CROCKFORD[time % 32]! + timePart;
    time = Math.floor(time / 32);
  }
  return MESSAGE_ID_PREFIX + timePart + base32(randomBytes(RANDOM_BYTES));
}

/** Crockford base32 of `bytes`, 5 bits a character, most significant first (10 bytes: exactly 16 characters). */
function base32(bytes: Uint8Array): string {
  let text = '';
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      text += CROCKFORD[(value >>> bits) & 31]!;
    }
    // Only the bits not yet written are kept, so `value` never outgrows 32 bits.
    value &= (1 << bits) - 1;
  }
  if (bits > 0) text += CROCKFORD[(value << (5 - bits)) & 31]!;
  return text;
}

/** The key bytes of a `whsec_` secret (the reference libraries also take the bare base64, so this does too). */
function secretKey(secret: string): Buffer {
  const encoded = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
  const key = Buffer.from(encoded, 'base64');
  // An empty key would sign with a key anyone knows: a configuration error, not something to send.
  if (key.length === 0) throw new Error('webhook secret has no key bytes');
  return key;
}

/** `v1,` + the base64 HMAC-SHA256 of `${msgId}.${timestampS}.${body}` under the key of `secret`. */
export function sign(secret: string, msgId: string, timestampS: number, body: string): string {
  // Receivers parse the header as an integer and sign that: a fraction here would sign content no receiver rebuilds.
  if (!Number.isSafeInteger(timestampS)) throw new RangeError(`webhook timestamp must be whole seconds, got ${timestampS}`);
  const digest = createHmac('sha256', secretKey(secret)).update(`${msgId}.${timestampS}.${body}`, 'utf8').digest('base64');
  return `v1,${digest}`;
}

/**
 * The `webhook-signature` value: one signature per secret, separated by a space. During a rotation both the new and
 * the old secret sign, so a receiver still on the old one and a receiver already on the new one both accept.
 */
export function signatureHeader(secrets: readonly string[], msgId: string, timestampS: number, body: string): string {
  if (secrets.length === 0) throw new Error('a webhook needs at least one secret to be signed');
  return secrets.map((secret) => sign(secret, msgId, timestampS, body)).join(' ');
}

export interface WebhookHeadersInput {
  msgId: string;
  /** Unix time in whole seconds; the same value is signed and sent. */
  timestampS: number;
  /** The exact bytes (as a string) that will be sent: any re-serialisation afterwards breaks the signature. */
  body: string;
  secrets: readonly string[];
  eventType: string;
  userAgent: string;
}

/** Every header of a delivery but `content-length` (the sender adds it), names in lower case. */
export function webhookHeaders(input: WebhookHeadersInput): Record<string, string> {
  return {
    'content-type': 'application/json',
    'webhook-id': input.msgId,
    'webhook-timestamp': String(input.timestampS),
    'webhook-signature': signatureHeader(input.secrets, input.msgId, input.timestampS, input.body),
    'usine-event': input.eventType,
    'user-agent': input.userAgent,
  };
}
