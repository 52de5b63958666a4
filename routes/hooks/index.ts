import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { paginationLinks } from '../../src/http/pagination.js';
import { locationHeader } from '../../src/schemas/common.js';
import { Delivery, DeliveryDetail, Hook, HookDescription, HookEvents, HookUrl } from '../../src/schemas/hook.js';
import { LinkHeader, PageFields, PageQuery, pageParams } from '../../src/schemas/pagination.js';
import { ref } from '../../src/schemas/ref.js';
import { BODY_ERRORS, Empty, problemResponses } from '../../src/schemas/responses.js';
import { refusePattern } from '../../src/webhooks/patterns.js';
import { newSecret } from '../../src/webhooks/signature.js';
import { checkWebhookUrl } from '../../src/webhooks/ssrf.js';

/** How long a rotated-out secret keeps signing, alongside the new one, so that receivers can switch without a gap. */
const ROTATION_OVERLAP_MS = 24 * 3600 * 1000;
const MAX_ID = 2_147_483_647;

const param = (description: string) => Type.Integer({ minimum: 1, maximum: MAX_ID, description, examples: [1] });
const ProjectParams = Type.Object({ id: param('Project identifier') });
const HookParams = Type.Object({ id: param('Project identifier'), hook_id: param('Hook identifier') });
const DeliveryParams = Type.Object({ id: param('Project identifier'), hook_id: param('Hook identifier'), delivery_id: param('Delivery identifier') });

const Secret = Type.String({
  description: 'The signing secret, `whsec_` + base64 of 32 random bytes: shown here only, never again — keep it',
  examples: ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'],
});

const HookWithSecret = Type.Composite([Type.Omit(Hook, []), Type.Object({ secret: Secret })], {
  description: 'The hook, with its signing secret (shown once)',
});

const CreateHookBody = Type.Object(
  {
    url: HookUrl,
    events: HookEvents,
    description: Type.Optional(HookDescription),
    active: Type.Optional(Type.Boolean({ description: 'Start enabled (default true)', examples: [true] })),
  },
  { additionalProperties: false, examples: [{ url: 'https://hooks.example.com/usine', events: ['build.*', 'job.failed'] }] },
);

const UpdateHookBody = Type.Object(
  {
    url: Type.Optional(HookUrl),
    events: Type.Optional(HookEvents),
    description: Type.Optional(HookDescription),
    active: Type.Optional(
      Type.Boolean({ description: '`true` enables a hook again (its failure count and reason are cleared); `false` disables it', examples: [true] }),
    ),
  },
  { additionalProperties: false, minProperties: 1, description: 'The fields to change', examples: [{ active: true }] },
);

const HookList = Type.Object({ items: Type.Array(ref(Hook), { description: "The project's hooks, oldest first" }) }, { description: "A project's hooks" });
const DeliveryList = Type.Object(
  { items: Type.Array(ref(Delivery), { description: 'Deliveries on this page, newest first' }), ...PageFields },
  { description: "A page of a hook's deliveries" },
);
const Rotation = Type.Object(
  {
    secret: Secret,
    previous_secret_expires_at: Type.Unsafe<Date | string>(
      Type.String({ format: 'date-time', description: 'Until when the old secret keeps signing too (ISO-8601, UTC)', examples: ['2026-12-09T10:00:00.000Z'] }),
    ),
  },
  { description: 'The new secret; deliveries carry both signatures until the old one expires' },
);

const SIGNING = `Every delivery is signed as the Standard Webhooks specification says: headers \`webhook-id\` (the same on
every attempt and redelivery: deduplicate on it), \`webhook-timestamp\` (unix seconds: refuse old ones) and
\`webhook-signature\` (\`v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}" with the secret's key>\`,
two space-separated during a rotation), plus \`Usine-Event\` and \`User-Agent: Usine-Hookshot/<version>\`; the body is
\`{"type", "timestamp", "data"}\`.`;

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { hooksRepository: hooks, config } = fastify;
  const canManage = { onRequest: fastify.requireRole('maintainer') };
  const security = [{ bearerAuth: [] }];
  const tags = ['hooks'];

  /** 400 naming every event pattern refused and why the URL is, before anything is stored. */
  async function validate(url: string | undefined, events: string[] | undefined) {
    const errors: { path: string; message: string }[] = [];
    for (const [index, pattern] of (events ?? []).entries()) {
      const refusal = refusePattern(pattern);
      if (refusal) errors.push({ path: `/body/events/${index}`, message: refusal });
    }
    if (url !== undefined) {
      const refusal = await checkWebhookUrl(url, { allowPrivate: config.WEBHOOK_ALLOW_PRIVATE_NETWORKS });
      if (refusal) errors.push({ path: '/body/url', message: `refused: ${refusal}` });
    }
    if (errors.length > 0) {
      throw Object.assign(fastify.httpErrors.badRequest(`Invalid body: ${errors.map((error) => `${error.path} ${error.message}`).join('; ')}`), {
        validation: errors.map((error) => ({ instancePath: error.path.slice('/body'.length), message: error.message, params: {} })),
        validationContext: 'body',
      });
    }
  }

  const noHook = (projectId: number, hookId: number) => fastify.httpErrors.notFound(`Project ${projectId} has no hook ${hookId}`);

  fastify.post(
    '/projects/:id/hooks',
    {
      ...canManage,
      schema: {
        tags,
        operationId: 'createHook',
        summary: 'Create a webhook',
        description: `Sends the project's events that \`events\` lists (\`build.*\`, \`job.failed\`, \`*\`…) to \`url\`, at least once, in event order where it can (one delivery of a hook in flight at a time; a delivery waiting for a retry does not hold back the next). ${SIGNING} The answer carries the secret, once. Maintainer or admin.`,
        security,
        params: ProjectParams,
        body: CreateHookBody,
        response: {
          201: { description: 'The hook, with its secret (shown once)', headers: locationHeader('/projects/1/hooks/1'), ...HookWithSecret },
          ...problemResponses(401, 403, 404, ...BODY_ERRORS),
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const { url, events, description = '', active = true } = request.body;
      await validate(url, events);
      const secret = newSecret();
      const hook = await hooks.create({ project_id: id, url, events, description, active, secret });
      if (!hook) throw fastify.httpErrors.notFound(`Project ${id} does not exist`);
      reply.code(201).header('location', `/projects/${id}/hooks/${hook.id}`);
      return { ...hook, secret };
    },
  );

  fastify.get(
    '/projects/:id/hooks',
    {
      ...canManage,
      schema: {
        tags,
        operationId: 'listHooks',
        summary: "List a project's webhooks",
        description: "The project's hooks (never their secrets). Maintainer or admin: a hook's URL may carry a receiver's token.",
        security,
        params: ProjectParams,
        response: { 200: HookList, ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const { id } = request.params;
      const items = await hooks.list(id);
      if (items.length === 0 && !(await fastify.projectsRepository.findById(id))) throw fastify.httpErrors.notFound(`Project ${id} does not exist`);
      return { items };
    },
  );

  fastify.get(
    '/projects/:id/hooks/:hook_id',
    {
      ...canManage,
      schema: {
        tags,
        operationId: 'getHook',
        summary: 'Get a webhook',
        description: 'One hook, never its secret. Maintainer or admin.',
        security,
        params: HookParams,
        response: { 200: ref(Hook), ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const { id, hook_id: hookId } = request.params;
      const hook = await hooks.find(id, hookId);
      if (!hook) throw noHook(id, hookId);
      return hook;
    },
  );

  fastify.patch(
    '/projects/:id/hooks/:hook_id',
    {
      ...canManage,
      schema: {
        tags,
        operationId: 'updateHook',
        summary: 'Change a webhook',
        description: 'Changes its URL, events, description, or whether it is active. `{"active": true}` enables a hook disabled after failures (its count starts again). Maintainer or admin.',
        security,
        params: HookParams,
        body: UpdateHookBody,
        response: { 200: ref(Hook), ...problemResponses(401, 403, 404, ...BODY_ERRORS) },
      },
    },
    async (request) => {
      const { id, hook_id: hookId } = request.params;
      await validate(request.body.url, request.body.events);
      const hook = await hooks.update(id, hookId, request.body);
      if (!hook) throw noHook(id, hookId);
      return hook;
    },
  );

  fastify.delete(
    '/projects/:id/hooks/:hook_id',
    {
      ...canManage,
      schema: {
        tags,
        operationId: 'deleteHook',
        summary: 'Delete a webhook',
        description: 'Deletes the hook and its delivery history; nothing more is sent. Maintainer or admin.',
        security,
        params: HookParams,
        response: { 204: { description: 'Deleted', ...Empty }, ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      const { id, hook_id: hookId } = request.params;
      if (!(await hooks.delete(id, hookId))) throw noHook(id, hookId);
      return reply.code(204).send(null);
    },
  );

  fastify.post(
    '/projects/:id/hooks/:hook_id/ping',
    {
      ...canManage,
      schema: {
        tags,
        operationId: 'pingHook',
        summary: 'Ping a webhook',
        description: 'Queues a `ping` delivery (its `data`: the hook\'s id, project, URL and events), signed as every delivery is: a way to check a receiver. Maintainer or admin.',
        security,
        params: HookParams,
        response: { 202: { ...ref(Delivery), description: 'The ping delivery, queued' }, ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      const { id, hook_id: hookId } = request.params;
      const delivery = await hooks.ping(id, hookId);
      if (!delivery) throw noHook(id, hookId);
      fastify.webhookWorkers.wake();
      return reply.code(202).send(delivery);
    },
  );

  fastify.post(
    '/projects/:id/hooks/:hook_id/rotate-secret',
    {
      ...canManage,
      schema: {
        tags,
        operationId: 'rotateHookSecret',
        summary: "Rotate a webhook's secret",
        description:
          'A new secret, shown once. The old one keeps signing for 24 hours: deliveries carry both signatures (`v1,<new> v1,<old>`), so the receiver can switch to the new secret at its pace. Maintainer or admin.',
        security,
        params: HookParams,
        response: { 200: Rotation, ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const { id, hook_id: hookId } = request.params;
      const secret = newSecret();
      const hook = await hooks.rotateSecret(id, hookId, secret, new Date(Date.now() + ROTATION_OVERLAP_MS));
      if (!hook) throw noHook(id, hookId);
      return { secret, previous_secret_expires_at: hook.previous_secret_expires_at! };
    },
  );

  fastify.get(
    '/projects/:id/hooks/:hook_id/deliveries',
    {
      ...canManage,
      schema: {
        tags,
        operationId: 'listHookDeliveries',
        summary: "List a webhook's deliveries",
        description: 'Its deliveries, newest first: event type, status, attempts, last answer and when, next attempt. Maintainer or admin.',
        security,
        params: HookParams,
        querystring: PageQuery,
        response: { 200: { ...DeliveryList, headers: LinkHeader }, ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      const { id, hook_id: hookId } = request.params;
      const { page, perPage } = pageParams(request.query);
      const list = await hooks.deliveries(id, hookId, page, perPage);
      if (!list) throw noHook(id, hookId);
      reply.header('link', paginationLinks(request, { page, perPage, total: list.total }));
      return { items: list.items, page, per_page: perPage, total: list.total };
    },
  );

  fastify.get(
    '/projects/:id/hooks/:hook_id/deliveries/:delivery_id',
    {
      ...canManage,
      schema: {
        tags,
        operationId: 'getHookDelivery',
        summary: 'Get a webhook delivery',
        description: "One delivery: the body sent, and each attempt's request headers, response status, headers, first 4 KiB of body, error and duration. Maintainer or admin.",
        security,
        params: DeliveryParams,
        response: { 200: DeliveryDetail, ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const { id, hook_id: hookId, delivery_id: deliveryId } = request.params;
      const delivery = await hooks.delivery(id, hookId, deliveryId);
      if (!delivery) throw fastify.httpErrors.notFound(`Hook ${hookId} of project ${id} has no delivery ${deliveryId}`);
      return delivery;
    },
  );

  fastify.post(
    '/projects/:id/hooks/:hook_id/deliveries/:delivery_id/redeliver',
    {
      ...canManage,
      schema: {
        tags,
        operationId: 'redeliverHookDelivery',
        summary: 'Redeliver a webhook delivery',
        description:
          'Sends a delivery again, with the same `webhook-id` (a receiver that saw it may skip it), now and with a new 24-hour retry window. A delivery in flight answers 409. Maintainer or admin.',
        security,
        params: DeliveryParams,
        response: { 202: { ...ref(Delivery), description: 'The delivery, queued again' }, ...problemResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      const { id, hook_id: hookId, delivery_id: deliveryId } = request.params;
      const delivery = await hooks.redeliver(id, hookId, deliveryId);
      if (!delivery) throw fastify.httpErrors.notFound(`Hook ${hookId} of project ${id} has no delivery ${deliveryId}`);
      if (delivery === 'in_flight') throw fastify.httpErrors.conflict(`Delivery ${deliveryId} is being delivered: redeliver it once this attempt is over`);
      fastify.webhookWorkers.wake();
      return reply.code(202).send(delivery);
    },
  );
};

export default routes;
