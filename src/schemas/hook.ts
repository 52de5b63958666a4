import { Type, type Static } from '@sinclair/typebox';
import { NO_CONTROL_CHARACTERS, NullableTimestamp, Timestamp } from './common.js';

const MAX_ID = 2_147_483_647;
const id = (description: string) => Type.Integer({ minimum: 1, maximum: MAX_ID, description, examples: [1] });

export const HookUrl = Type.String({
  minLength: 1,
  maxLength: 2048,
  pattern: NO_CONTROL_CHARACTERS,
  description:
    'Where deliveries are POSTed: `http` or `https`, no credentials. A host that is, or resolves to, a loopback, private, ' +
    'link-local, unique-local, multicast or cloud-metadata address is refused (unless WEBHOOK_ALLOW_PRIVATE_NETWORKS), ' +
    'and checked again on the address each delivery connects to',
  examples: ['https://hooks.example.com/usine'],
});

export const HookEvents = Type.Array(
  Type.String({ minLength: 1, maxLength: 64, description: 'An event type (`job.failed`), a group (`build.*`), or `*`', examples: ['build.*'] }),
  { minItems: 1, maxItems: 32, uniqueItems: true, description: 'The events it receives', examples: [['build.*', 'job.failed']] },
);

export const HookDescription = Type.String({ maxLength: 500, pattern: NO_CONTROL_CHARACTERS, description: 'What it is for', examples: ['Chat notifications'] });

export const Hook = Type.Object(
  {
    id: id('Hook identifier'),
    project_id: id('The project whose events it receives'),
    url: HookUrl,
    events: HookEvents,
    description: HookDescription,
    active: Type.Boolean({ description: 'Whether deliveries are made and sent; false once disabled (by a user, or after 20 failed attempts in a row)', examples: [true] }),
    disabled_reason: Type.Union([Type.String(), Type.Null()], {
      description: 'Why it was disabled automatically (null otherwise); `PATCH {"active": true}` enables it again',
      examples: [null],
    }),
    consecutive_failures: Type.Integer({ minimum: 0, description: 'Failed attempts since the last success', examples: [0] }),
    previous_secret_expires_at: NullableTimestamp('Until when the secret replaced by the last rotation still signs, alongside the new one'),
    created_at: Timestamp('When it was created'),
    updated_at: Timestamp('When it was last changed'),
  },
  { $id: 'Hook', title: 'Hook', description: "A webhook: a project's events, signed (Standard Webhooks) and POSTed to a URL" },
);
export type HookBody = Static<typeof Hook>;

export const DELIVERY_STATUSES = ['pending', 'delivering', 'succeeded', 'failed'] as const;

export const Delivery = Type.Object(
  {
    id: id('Delivery identifier'),
    hook_id: id('The hook it is for'),
    event_id: Type.Union([Type.Integer(), Type.Null()], { description: 'The event it carries (null for a ping)', examples: [42] }),
    event_type: Type.String({ description: 'The event type (`ping` for a ping)', examples: ['build.succeeded'] }),
    message_id: Type.String({ description: 'Its `webhook-id`: the same on every attempt and redelivery (receivers deduplicate on it)', examples: ['msg_01JEXAMPLE0000000000000000'] }),
    status: Type.Union(
      DELIVERY_STATUSES.map((status) => Type.Literal(status)),
      { description: '`pending` (due at `next_attempt_at`), `delivering`, `succeeded` (a 2xx), or `failed` (given up)', examples: ['succeeded'] },
    ),
    attempts: Type.Integer({ minimum: 0, description: 'Attempts made', examples: [1] }),
    next_attempt_at: NullableTimestamp('When it is tried next (pending), null otherwise'),
    retry_until: Timestamp('No retry is planned after this (24 h after it was made, or redelivered)'),
    last_attempt_at: NullableTimestamp('When it was last tried'),
    last_status_code: Type.Union([Type.Integer(), Type.Null()], { description: "The receiver's last answer (null: none, see `last_error`)", examples: [200] }),
    last_error: Type.Union([Type.String(), Type.Null()], { description: 'Why the last attempt got no answer (timeout, refused address…)', examples: [null] }),
    created_at: Timestamp('When it was made'),
  },
  { $id: 'Delivery', title: 'Delivery', description: 'One event (or ping) to send to one hook, and how its attempts went' },
);

export const DeliveryAttempt = Type.Object(
  {
    attempt: Type.Integer({ minimum: 1, description: 'Which attempt', examples: [1] }),
    request_headers: Type.Record(Type.String(), Type.String(), {
      description: 'The headers sent (`webhook-id`, `webhook-timestamp`, `webhook-signature`, `usine-event`, `user-agent`…)',
      examples: [{ 'webhook-id': 'msg_01JEXAMPLE0000000000000000', 'webhook-timestamp': '1796700000' }],
    }),
    response_status: Type.Union([Type.Integer(), Type.Null()], { description: 'The status answered, null without an answer', examples: [200] }),
    response_headers: Type.Union([Type.Record(Type.String(), Type.String()), Type.Null()], {
      description: 'The headers answered',
      examples: [{ 'content-type': 'text/plain' }],
    }),
    response_body: Type.Union([Type.String(), Type.Null()], { description: 'The first 4 KiB of the body answered', examples: ['ok'] }),
    error: Type.Union([Type.String(), Type.Null()], { description: 'Why there was no (complete) answer', examples: [null] }),
    duration_ms: Type.Integer({ minimum: 0, description: 'How long the attempt took', examples: [12] }),
    created_at: Timestamp('When it was recorded'),
  },
  { description: 'One attempt of a delivery' },
);

export const DeliveryDetail = Type.Composite(
  [
    Type.Omit(Delivery, []),
    Type.Object({
      body: Type.String({ description: 'The body sent, byte for byte (`{"type", "timestamp", "data"}`)', examples: ['{"type":"build.succeeded","timestamp":"2026-12-08T10:00:04.370Z","data":{"id":7}}'] }),
      attempts_made: Type.Array(DeliveryAttempt, { description: 'Every attempt, oldest first' }),
    }),
  ],
  { description: 'A delivery with what was sent and every attempt' },
);
