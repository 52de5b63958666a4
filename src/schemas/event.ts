import { Type, type Static } from '@sinclair/typebox';
import { Timestamp } from './common.js';
import { ref } from './ref.js';

/** Every type the event log writes (migration 0015), in the order a build's life meets them. */
export const EVENT_TYPES = [
  'project.created',
  'project.updated',
  'project.deleted',
  'build.queued',
  'build.running',
  'build.succeeded',
  'build.failed',
  'build.canceled',
  'job.queued',
  'job.manual',
  'job.running',
  'job.succeeded',
  'job.failed',
  'job.canceled',
  'job.skipped',
  'hook.disabled',
] as const;

const nullableId = (description: string) => Type.Union([Type.Integer(), Type.Null()], { description, examples: [1] });

export const Event = Type.Object(
  {
    id: Type.Integer({
      minimum: 1,
      description:
        'Increasing and unique across replicas: an event with a larger id was logged after (pass it back as `after` or ' +
        '`Last-Event-ID` to resume)',
      examples: [42],
    }),
    type: Type.String({ description: `What happened: ${EVENT_TYPES.map((type) => `\`${type}\``).join(', ')}`, examples: ['build.succeeded'] }),
    project_id: nullableId('The project it concerns'),
    build_id: nullableId('The build it concerns (build and job events)'),
    job_id: nullableId('The job it concerns (job events)'),
    created_at: Timestamp('When the change was made'),
    data: Type.Object(
      {},
      {
        additionalProperties: true,
        description:
          'The resource as the API showed it right after the change: a Project, a Build (without its `logs`: read ' +
          '`GET /builds/{id}/logs`), a Job, or for `hook.disabled` the hook (id, project_id, description, active, ' +
          'disabled_reason, consecutive_failures, updated_at; never its URL or secrets)',
        examples: [{ id: 7, project_id: 1, number: 3, status: 'success', branch: 'main', duration_s: 4.37 }],
      },
    ),
  },
  { $id: 'Event', title: 'Event', description: 'One change of state, as the durable event log recorded it' },
);
export type EventBody = Static<typeof Event>;

export const EventList = Type.Object(
  {
    items: Type.Array(ref(Event), { description: 'Events, newest first (or oldest first after `after`)' }),
    per_page: Type.Integer({ minimum: 1, description: 'The most events a page holds', examples: [50] }),
    next_before: Type.Union([Type.Integer(), Type.Null()], {
      description: 'Newest-first pages: pass as `before` for the next (older) page; null when there is none',
      examples: [40],
    }),
    next_after: Type.Union([Type.Integer(), Type.Null()], {
      description:
        'The largest id on this page (or the `after` given when it is empty): pass as `after` to get what comes next; ' +
        'null on an empty newest-first page',
      examples: [42],
    }),
  },
  { description: 'A page of the event log' },
);
