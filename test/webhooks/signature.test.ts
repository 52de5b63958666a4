import { createHmac } from 'node:crypto';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { newMessageId, newSecret, sign, signatureHeader, webhookHeaders } from '../../src/webhooks/signature.js';

const nowS = () => Math.floor(Date.now() / 1000);
const body = JSON.stringify({ type: 'build.finished', data: { id: 42, status: 'succeeded', note: 'café ✓' } });

function headersFor(secrets: readonly string[], overrides: { body?: string; timestampS?: number } = {}) {
  return webhookHeaders({
    msgId: newMessageId(),
    timestampS: overrides.timestampS ?? nowS(),
    body: overrides.body ?? body,
    secrets,
    eventType: 'build.finished',
    userAgent: 'Usine-Webhooks/1.0',
  });
}

describe('newSecret', () => {
  it('is whsec_ followed by the base64 of 32 bytes, and different every time', () => {
    const secrets = new Set(Array.from({ length: 100 }, () => newSecret()));
    expect(secrets.size).toBe(100);
    for (const secret of secrets) {
      expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
      const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
      expect(key.length).toBe(32);
      // The encoding round-trips: nothing was lost to a non-base64 character.
      expect(`whsec_${key.toString('base64')}`).toBe(secret);
    }
  });
});

describe('newMessageId', () => {
  it('is msg_ followed by 26 URL-safe characters, unique over many calls', () => {
    const ids = Array.from({ length: 20_000 }, () => newMessageId());
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids.slice(0, 100)) expect(id).toMatch(/^msg_[0-9A-HJKMNP-TV-Z]{26}$/);
    // Even within one millisecond, the random part keeps them apart.
    const sameMs = Array.from({ length: 5000 }, () => newMessageId(1_700_000_000_000));
    expect(new Set(sameMs).size).toBe(sameMs.length);
  });

  it('sorts by creation time', () => {
    const times = [0, 1, 31, 32, 1_000, 1_699_999_999_999, 1_700_000_000_000, 1_700_000_000_001, 4_102_444_800_000];
    const ids = times.map((time) => newMessageId(time));
    expect([...ids].sort()).toEqual(ids);
    // The time prefix is the time itself, in base32: the ULID layout.
    expect(newMessageId(0).slice(4, 14)).toBe('0000000000');
    expect(newMessageId(32).slice(4, 14)).toBe('0000000010');
  });
});

describe('sign', () => {
  it('is v1, and the base64 HMAC-SHA256 of id.timestamp.body under the decoded key', () => {
    const key = Buffer.alloc(32, 7);
    const secret = `whsec_${key.toString('base64')}`;
    const expected = createHmac('sha256', key).update(`msg_1.1700000000.${body}`).digest('base64');
    expect(sign(secret, 'msg_1', 1_700_000_000, body)).toBe(`v1,${expected}`);
  });

  it('matches the reference library byte for byte, a non-ASCII body included', () => {
    const secret = newSecret();
    const reference = new Webhook(secret).sign('msg_x', new Date(1_700_000_000_000), body);
    expect(sign(secret, 'msg_x', 1_700_000_000, body)).toBe(reference);
  });

  it('refuses a fractional timestamp and a secret without key bytes', () => {
    expect(() => sign(newSecret(), 'msg_1', 1.5, body)).toThrow(RangeError);
    expect(() => sign('whsec_', 'msg_1', 1, body)).toThrow(/no key bytes/);
  });
});

describe('webhookHeaders, checked by the reference verifier (standardwebhooks)', () => {
  it('carries every header, in lower case, with the timestamp as decimal seconds', () => {
    const secret = newSecret();
    const headers = webhookHeaders({
      msgId: 'msg_abc',
      timestampS: 1_700_000_000,
      body,
      secrets: [secret],
      eventType: 'build.finished',
      userAgent: 'Usine-Webhooks/1.0',
    });
    expect(headers).toEqual({
      'content-type': 'application/json',
      'webhook-id': 'msg_abc',
      'webhook-timestamp': '1700000000',
      'webhook-signature': sign(secret, 'msg_abc', 1_700_000_000, body),
      'usine-event': 'build.finished',
      'user-agent': 'Usine-Webhooks/1.0',
    });
  });

  it('verifies with a fresh secret, and gives back the body', () => {
    const secret = newSecret();
    expect(new Webhook(secret).verify(body, headersFor([secret]))).toEqual(JSON.parse(body));
  });

  it('during a rotation, the new secret alone and the old secret alone each verify the two-signature header', () => {
    const [next, old] = [newSecret(), newSecret()];
    const headers = headersFor([next, old]);
    const signatures = headers['webhook-signature']!.split(' ');
    expect(signatures).toHaveLength(2);
    expect(signatures.every((signature) => signature.startsWith('v1,'))).toBe(true);
    expect(new Webhook(next).verify(body, headers)).toEqual(JSON.parse(body));
    expect(new Webhook(old).verify(body, headers)).toEqual(JSON.parse(body));
    // A third secret, not part of the rotation, is refused.
    expect(() => new Webhook(newSecret()).verify(body, headers)).toThrow(WebhookVerificationError);
  });

  it('fails for a tampered body, a tampered timestamp or id, and another secret', () => {
    const secret = newSecret();
    const webhook = new Webhook(secret);
    const headers = headersFor([secret]);
    expect(() => webhook.verify(body.replace('42', '43'), headers)).toThrow(/No matching signature/);
    // One second off: still within the verifier's tolerance, so only the signature can catch it.
    const timestamp = String(Number(headers['webhook-timestamp']) - 1);
    expect(() => webhook.verify(body, { ...headers, 'webhook-timestamp': timestamp })).toThrow(/No matching signature/);
    expect(() => webhook.verify(body, { ...headers, 'webhook-id': newMessageId() })).toThrow(/No matching signature/);
    expect(() => new Webhook(newSecret()).verify(body, headers)).toThrow(/No matching signature/);
    // The untouched delivery still verifies: the failures above are the tampering's.
    expect(() => webhook.verify(body, headers)).not.toThrow();
  });

  it('signatureHeader refuses an empty list of secrets rather than send an unsigned delivery', () => {
    expect(() => signatureHeader([], 'msg_1', nowS(), body)).toThrow(/at least one secret/);
  });
});
