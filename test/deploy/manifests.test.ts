import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { EnvSchema } from '../../src/config.js';
import { createServer } from '../../src/server.js';
import { createScratchDatabase, testConfig, type ScratchDatabase } from '../helper.js';

/**
 * The deployment files must agree with the code: ports, probe paths, environment variable names, the
 * non-root user and the health checks. Parsed, not grepped, so a comment cannot satisfy a check.
 */

const root = join(import.meta.dirname, '..', '..');
const read = (path: string) => readFileSync(join(root, path), 'utf8');

type Yaml = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const k8sDir = 'deploy/k8s';
const k8sFiles = readdirSync(join(root, k8sDir)).filter((file) => file.endsWith('.yaml') || file.endsWith('.yml'));
const k8sDocs: Yaml[] = k8sFiles.flatMap((file) =>
  parseAllDocuments(read(join(k8sDir, file))).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
    return doc.toJS() as Yaml;
  }),
);
const byKind = (kind: string): Yaml => {
  const found = k8sDocs.filter((doc) => doc.kind === kind);
  if (found.length !== 1) throw new Error(`expected one ${kind} in ${k8sDir}, found ${found.length}`);
  return found[0]!;
};

const compose = parseYaml(read('docker-compose.yml')) as Yaml;
const dockerfile = read('Dockerfile').replace(/\\\r?\n/g, ' ');
const dockerLines = dockerfile.split(/\r?\n/).map((line) => line.trim()).filter((line) => line && !line.startsWith('#'));

const envNames = new Set(Object.keys(EnvSchema.properties));
const defaultPort = (EnvSchema.properties.PORT as { default: number }).default;

const deployment = byKind('Deployment');
const podSpec = deployment.spec.template.spec as Yaml;
const container = (podSpec.containers as Yaml[])[0]!;
const httpPort = (container.ports as Yaml[]).find((port) => port.name === 'http');

/** The last stage of the Dockerfile: what the image runs. */
const runtimeStage = dockerLines.slice(dockerLines.findLastIndex((line) => /^FROM\s/i.test(line)));
const instruction = (name: string) => runtimeStage.filter((line) => new RegExp(`^${name}\\s`, 'i').test(line));

/** The URL path the Dockerfile HEALTHCHECK requests. */
function healthcheckPath(): string {
  const [line] = instruction('HEALTHCHECK');
  const path = line ? /127\.0\.0\.1:'\s*\+[^+]+\+\s*'(\/[\w/-]*)'/.exec(line)?.[1] : undefined;
  if (!path) throw new Error('no HEALTHCHECK with a path found in the Dockerfile');
  return path;
}

function probePaths(): string[] {
  return ['livenessProbe', 'readinessProbe', 'startupProbe'].map((probe) => {
    const path = container[probe]?.httpGet?.path as string | undefined;
    if (!path) throw new Error(`deployment: ${probe} has no httpGet.path`);
    return path;
  });
}

describe('deployment files match the code', () => {
  let app: FastifyInstance;
  let scratch: ScratchDatabase;

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    app = await createServer(testConfig(scratch.url), { logger: false });
    await app.ready();
  });
  afterAll(async () => {
    await app?.close();
    await scratch?.drop();
  });

  describe('ports', () => {
    it('the container port, compose port and Dockerfile EXPOSE are the PORT default', () => {
      expect(defaultPort).toBe(5000);
      expect(httpPort?.containerPort).toBe(defaultPort);
      expect(instruction('EXPOSE').map((line) => line.split(/\s+/)[1])).toEqual([String(defaultPort)]);
      expect(compose.services.api.ports).toContain(`${defaultPort}:${defaultPort}`);
      const configMap = byKind('ConfigMap');
      expect(Number(configMap.data.PORT)).toBe(defaultPort);
    });

    it('the Service sends port 80 to the pods’ http port', () => {
      const service = byKind('Service');
      expect(service.spec.type).toBe('ClusterIP');
      expect(service.spec.ports).toEqual([expect.objectContaining({ port: 80, targetPort: 'http' })]);
      expect(service.spec.selector).toEqual(deployment.spec.template.metadata.labels);
    });
  });

  describe('environment variable names', () => {
    it('every compose variable of the api is read by the app', () => {
      const names = Object.keys(compose.services.api.environment as Yaml);
      expect(names.length).toBeGreaterThan(0);
      expect(names.filter((name) => !envNames.has(name))).toEqual([]);
    });

    it('every ConfigMap and Secret key is read by the app, and the config loads from them', () => {
      const configMap = byKind('ConfigMap');
      const secret = byKind('Secret');
      const names = [...Object.keys(configMap.data as Yaml), ...Object.keys(secret.stringData as Yaml)];
      expect(names.filter((name) => !envNames.has(name))).toEqual([]);
      // The secret's placeholders are values the app would accept (no schema or production-safety error).
      // It would refuse ADMIN_PASSWORD=admin123 and a short JWT_SECRET, so the example must not show them.
      const env = { ...configMap.data, ...secret.stringData } as Record<string, string>;
      expect(env.NODE_ENV).toBe('production');
      expect(() => testConfig(env.DATABASE_URL!, env)).not.toThrow();
    });

    it('the Deployment takes its environment from that ConfigMap and Secret', () => {
      const refs = (container.envFrom as Yaml[]).map((from) => from.configMapRef?.name ?? from.secretRef?.name);
      expect(refs).toEqual([byKind('ConfigMap').metadata.name, byKind('Secret').metadata.name]);
    });
  });

  describe('health checks', () => {
    it('every probe path is a GET route of the app that answers 200 when all is well', async () => {
      for (const url of probePaths()) {
        expect(app.hasRoute({ method: 'GET', url }), url).toBe(true);
        expect((await app.inject({ method: 'GET', url })).statusCode, url).toBe(200);
      }
    });

    it('the probes use the named http port', () => {
      for (const probe of ['livenessProbe', 'readinessProbe', 'startupProbe']) {
        expect(container[probe].httpGet.port).toBe('http');
      }
    });

    it('the Dockerfile HEALTHCHECK path is a GET route that answers 200', async () => {
      const url = healthcheckPath();
      expect(app.hasRoute({ method: 'GET', url })).toBe(true);
      expect((await app.inject({ method: 'GET', url })).statusCode).toBe(200);
    });

    it('compose: the api waits for a healthy database (and Redis), which have health checks', () => {
      const { api, db, redis } = compose.services as Record<string, Yaml>;
      expect(api!.depends_on.db).toEqual({ condition: 'service_healthy' });
      expect(db!.healthcheck.test).toBeDefined();
      expect(api!.environment.DATABASE_URL).toMatch(/^postgres:\/\/.+@db:5432\//);
      if (redis) {
        expect(api!.depends_on.redis).toEqual({ condition: 'service_healthy' });
        expect(redis.healthcheck.test).toBeDefined();
        expect(api!.environment.REDIS_URL).toMatch(/^redis:\/\/redis:6379/);
      }
    });
  });

  describe('pods', () => {
    it('run as the image’s non-root node user (uid 1000), read-only, without privileges', () => {
      expect(instruction('USER')).toEqual(['USER node']);
      expect(podSpec.securityContext.runAsNonRoot).toBe(true);
      expect(podSpec.securityContext.runAsUser).toBe(1000);
      const security = container.securityContext as Yaml;
      expect(security.readOnlyRootFilesystem).toBe(true);
      expect(security.allowPrivilegeEscalation).toBe(false);
      expect(security.capabilities.drop).toEqual(['ALL']);
      expect(security.runAsUser ?? podSpec.securityContext.runAsUser).toBe(1000);
      // The only writable place, /tmp, is an emptyDir.
      const tmp = (container.volumeMounts as Yaml[]).find((mount) => mount.mountPath === '/tmp');
      expect((podSpec.volumes as Yaml[]).find((volume) => volume.name === tmp?.name)?.emptyDir).toBeDefined();
    });

    it('have time to shut down: grace period > preStop + the app’s 10 s', () => {
      const preStop = container.lifecycle?.preStop as Yaml | undefined;
      const sleep = Number(preStop?.sleep?.seconds ?? preStop?.exec?.command?.at(-1) ?? 0);
      expect(podSpec.terminationGracePeriodSeconds).toBeGreaterThan(10);
      expect(podSpec.terminationGracePeriodSeconds).toBeGreaterThan(sleep + 10);
    });

    it('have requests and limits', () => {
      expect(container.resources.requests).toEqual(expect.objectContaining({ cpu: expect.anything(), memory: expect.anything() }));
      expect(container.resources.limits).toEqual(expect.objectContaining({ cpu: expect.anything(), memory: expect.anything() }));
    });
  });

  describe('scaling', () => {
    it('3 replicas, rolling updates that never go below them', () => {
      expect(deployment.spec.replicas).toBe(3);
      expect(deployment.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
      expect(deployment.spec.selector.matchLabels).toEqual(deployment.spec.template.metadata.labels);
    });

    it('the HPA scales that Deployment from 3 to 10 on CPU', () => {
      const hpa = byKind('HorizontalPodAutoscaler');
      expect(hpa.apiVersion).toBe('autoscaling/v2');
      expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata.name });
      expect([hpa.spec.minReplicas, hpa.spec.maxReplicas]).toEqual([3, 10]);
      expect(hpa.spec.metrics[0].resource.name).toBe('cpu');
    });

    it('the PDB selects the Deployment’s pods and keeps 2 of them', () => {
      const pdb = byKind('PodDisruptionBudget');
      const labels = deployment.spec.template.metadata.labels as Record<string, string>;
      for (const [key, value] of Object.entries(pdb.spec.selector.matchLabels as Record<string, string>)) {
        expect(labels[key]).toBe(value);
      }
      expect(pdb.spec.minAvailable).toBe(2);
    });
  });
});
