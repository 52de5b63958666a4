import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifySchemaCompiler } from 'fastify';
import { preferredMediaType } from '../../src/http/accept.js';
import { createValidatorCompiler } from '../../src/http/validators.js';
import { defaultPipeline } from '../../src/pipelines/default.js';
import { PipelineDefinition, type DefinitionProblem } from '../../src/pipelines/definition.js';
import { resolvePipeline, ResolvedJob } from '../../src/pipelines/resolve.js';
import { validateDefinition } from '../../src/pipelines/validate.js';
import { parseYaml, toYaml, YamlSyntaxError } from '../../src/pipelines/yaml.js';
import { idParams } from '../../src/schemas/common.js';
import { ref } from '../../src/schemas/ref.js';
import { Empty, problemResponses } from '../../src/schemas/responses.js';

/**
 * A definition is small (the example is 400 bytes; 200 jobs with scripts, tens of kilobytes): a body over this is
 * refused with 413 before it is parsed, whatever BODY_LIMIT allows elsewhere, so a hostile body costs little to read
 * (the `yaml` package parses some 100–300 KB a second of CPU).
 */
export const PIPELINE_BODY_LIMIT = 128 * 1024;
/**
 * YAML is held to less: the `yaml` package's worst case (a body that is one long syntax error after another) costs
 * seconds of CPU per 100 KB on a loaded machine. 64 KiB of YAML is still 200 jobs written out at length.
 */
export const PIPELINE_YAML_LIMIT = 64 * 1024;

/** YAML's registered media type (RFC 9512), then the older names clients still send. */
const YAML_TYPES = ['application/yaml', 'application/x-yaml', 'text/yaml', 'text/x-yaml'] as const;
const ANSWER_TYPES = ['application/json', ...YAML_TYPES] as const;

/** A YAML body as read by this plugin's parser: its value and the duplicate keys found on the way. */
class YamlBody {
  constructor(
    readonly value: unknown,
    readonly problems: DefinitionProblem[],
  ) {}
}

/**
 * Problems as the root error handler words request validation errors (src/http/problem.ts): a 400
 * `validation_error` whose `errors` point into the body (`/body/jobs/unit/needs/0`).
 */
function invalidBody(problems: DefinitionProblem[]) {
  const summary = problems.map((problem) => `${problem.path || '/'} ${problem.message}`).join('; ');
  return Object.assign(new Error(`Invalid pipeline definition: ${summary}`), {
    statusCode: 400,
    validationContext: 'body',
    validation: problems.map((problem) => ({ instancePath: problem.path, message: problem.message })),
  });
}

const ProjectIdParams = idParams('Project identifier');

const SourceHeader = {
  'x-pipeline-source': Type.Unsafe<'default' | 'project'>({
    type: 'string',
    enum: ['default', 'project'],
    description: '`project` for the project’s own definition, `default` for the default pipeline it runs without one',
    examples: ['project'],
  }),
};

const YamlText = Type.String({
  description: 'The definition as YAML',
  examples: ['stages: [build, test]\njobs:\n  compile:\n    stage: build\n  unit:\n    stage: test\n    needs: [compile]\n'],
});

/** A definition answered as JSON (the default) or as YAML when `Accept` prefers it. */
const definitionContent = {
  'application/json': { schema: ref(PipelineDefinition) },
  'application/yaml': { schema: YamlText },
};

const definitionBody = {
  content: {
    'application/json': { schema: ref(PipelineDefinition) },
    'application/yaml': { schema: YamlText },
  },
};

const LintResult = Type.Object(
  {
    valid: Type.Boolean({ description: 'Whether the definition can be saved as it is', examples: [true] }),
    errors: Type.Array(
      Type.Object({
        path: Type.String({ description: 'JSON pointer into the definition', examples: ['/jobs/unit/needs/0'] }),
        message: Type.String({ description: 'What is wrong there', examples: ['unknown job `compyle`'] }),
      }),
      { description: 'Every problem found (empty when valid)' },
    ),
    jobs: Type.Array(ResolvedJob, {
      description: 'The resolved job graph in pipeline order (stage order, then the order jobs are listed in); empty when invalid',
    }),
  },
  { description: 'What `POST /pipelines/lint` found' },
);

const BODY_PROBLEMS = {
  ...problemResponses(400, 413),
  415: {
    ...problemResponses(415)[415],
    description: 'The body is neither `application/json` nor YAML (`application/yaml`) (`unsupported_media_type`)',
  },
};

const DEFINITION_RULES =
  'Rules: every job names one of `stages`; `needs` name jobs of the same or an earlier stage (GitLab allows needs ' +
  'within a stage since 14.2), each once, without cycles; a job without `needs` waits for every job of the earlier ' +
  'stages, `needs: []` starts at once, a need on a `parallel` job waits for all its copies; at most 50 stages and 200 ' +
  'jobs once `parallel` (≤ 50) has made its copies; names 1–100 characters; `duration_s` is `[min, max]` with min ≤ max ' +
  '≤ 3600; YAML keys must be unique, custom tags are refused and aliases are bounded. The body is at most 128 KiB (JSON) or 64 KiB (YAML).';

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  const canRead = { onRequest: fastify.requireRole('viewer') };
  const canWrite = { onRequest: fastify.requireRole('maintainer') };
  const security = [{ bearerAuth: [] }];
  const bodyLimit = Math.min(fastify.config.BODY_LIMIT, PIPELINE_BODY_LIMIT);
  const resolveOptions = { defaultFailRate: fastify.config.BUILD_FAIL_RATE };
  const defaultDefinition = defaultPipeline(fastify.config.BUILD_FAIL_RATE);

  // YAML bodies, for this plugin's routes only. A syntax error is a 400 like malformed JSON; duplicate keys are kept as
  // problems of the definition (POST /pipelines/lint reports them as such).
  fastify.addContentTypeParser([...YAML_TYPES], { parseAs: 'string', bodyLimit }, (_request, text, done) => {
    if (Buffer.byteLength(text as string) > PIPELINE_YAML_LIMIT) {
      return done(fastify.httpErrors.payloadTooLarge(`A YAML definition is at most ${PIPELINE_YAML_LIMIT / 1024} KiB`));
    }
    try {
      const { value, problems } = parseYaml(text as string);
      done(null, new YamlBody(value, problems));
    } catch (error) {
      if (error instanceof YamlSyntaxError) done(invalidBody(error.problems));
      else done(error as Error);
    }
  });

  // The definition routes check their body themselves (src/pipelines/validate.ts), so that the lint answers every
  // problem in its 200 and a PUT in its 400, shape and graph together; their body schema only documents it.
  const requestValidators = createValidatorCompiler();
  const validatorCompiler: FastifySchemaCompiler<unknown> = (route) => (route.httpPart === 'body' ? () => true : requestValidators(route));

  /** The definition a body holds, with every problem it has. */
  const checkBody = (body: unknown) =>
    body instanceof YamlBody ? validateDefinition(body.value, body.problems) : validateDefinition(body);

  /** Sends a definition in the format `Accept` prefers. */
  function sendDefinition(reply: FastifyReply, accept: string | undefined, definition: PipelineDefinition) {
    if (preferredMediaType(accept, ANSWER_TYPES) === 'application/json') return reply.send(definition);
    // Answered as text: the response's JSON serializer is for the JSON form.
    return reply.type('application/yaml; charset=utf-8').serializer((text) => text as string).send(toYaml(definition));
  }

  fastify.get(
    '/projects/:id/pipeline',
    {
      ...canRead,
      schema: {
        tags: ['pipelines'],
        operationId: 'getProjectPipeline',
        summary: "Get a project's pipeline definition",
        description:
          'The project’s pipeline: its own definition, or the default one (checkout, install, test, ' +
          'package: today’s build, 2–10 s in all) while it has none; `X-Pipeline-Source` says which. JSON, or YAML when ' +
          '`Accept` prefers `application/yaml` (`application/x-yaml` and `text/yaml` too).',
        security,
        params: ProjectIdParams,
        response: {
          200: { description: 'The definition', headers: SourceHeader, content: definitionContent },
          ...problemResponses(400, 401, 403, 404),
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const stored = await fastify.pipelinesRepository.get(id);
      if (stored === undefined) throw fastify.httpErrors.notFound(`Project ${id} does not exist`);
      reply.header('x-pipeline-source', stored === null ? 'default' : 'project');
      return sendDefinition(reply, request.headers.accept, stored ?? defaultDefinition);
    },
  );

  fastify.put(
    '/projects/:id/pipeline',
    {
      ...canWrite,
      bodyLimit,
      validatorCompiler,
      schema: {
        tags: ['pipelines'],
        operationId: 'putProjectPipeline',
        summary: "Set a project's pipeline definition",
        description:
          'Replaces the project’s pipeline definition, sent as JSON or as YAML (`Content-Type: application/yaml`, a ' +
          '`.usine.yml` written like a `.gitlab-ci.yml`). An invalid one answers 400 `validation_error` with every ' +
          'problem in `errors`, each with a JSON pointer into the body (`/body/jobs/unit/needs/0`). Answers the saved ' +
          `definition in the format \`Accept\` prefers. Builds run the default pipeline until the job engine lands; the ` +
          `definition is validated and kept for it. ${DEFINITION_RULES} ` +
          'Needs the maintainer role.',
        security,
        params: ProjectIdParams,
        body: definitionBody,
        response: {
          200: { description: 'The definition as saved', headers: SourceHeader, content: definitionContent },
          ...problemResponses(401, 403, 404),
          ...BODY_PROBLEMS,
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const checked = checkBody(request.body);
      if (!checked.valid) throw invalidBody(checked.problems);
      if (!(await fastify.pipelinesRepository.put(id, checked.definition))) throw fastify.httpErrors.notFound(`Project ${id} does not exist`);
      reply.header('x-pipeline-source', 'project');
      return sendDefinition(reply, request.headers.accept, checked.definition);
    },
  );

  fastify.delete(
    '/projects/:id/pipeline',
    {
      ...canWrite,
      schema: {
        tags: ['pipelines'],
        operationId: 'deleteProjectPipeline',
        summary: "Remove a project's pipeline definition",
        description:
          'The project goes back to the default pipeline. Answers 204 whether ' +
          'or not it had a definition. Needs the maintainer role.',
        security,
        params: ProjectIdParams,
        response: { 204: { ...Empty, description: 'The project has the default pipeline' }, ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      if (!(await fastify.pipelinesRepository.clear(id))) throw fastify.httpErrors.notFound(`Project ${id} does not exist`);
      return reply.code(204).send(null);
    },
  );

  fastify.post(
    '/pipelines/lint',
    {
      ...canRead,
      bodyLimit,
      validatorCompiler,
      schema: {
        tags: ['pipelines'],
        operationId: 'lintPipeline',
        summary: 'Check a pipeline definition',
        description:
          'Validates a definition (JSON, or YAML with `Content-Type: application/yaml`) without saving it, as the GitLab ' +
          'CI Lint API does: 200 with `valid: true` and the resolved job graph (copies of `parallel` jobs named ' +
          '`name i/n`, every job’s needs spelled out, defaults filled in with this server’s `BUILD_FAIL_RATE`), or 200 ' +
          'with `valid: false` and every problem, each with a JSON pointer into the definition (`/jobs/unit/needs/0`). ' +
          `A body that cannot be read at all (malformed JSON or YAML) is a 400. ${DEFINITION_RULES}`,
        security,
        body: definitionBody,
        response: {
          200: { description: 'What the check found', content: { 'application/json': { schema: LintResult } } },
          ...problemResponses(401, 403),
          ...BODY_PROBLEMS,
        },
      },
    },
    async (request) => {
      const checked = checkBody(request.body);
      if (!checked.valid) return { valid: false, errors: checked.problems, jobs: [] };
      return { valid: true, errors: [], jobs: resolvePipeline(checked.definition, resolveOptions) };
    },
  );
};

export default routes;
