import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyBaseLogger } from 'fastify';
import type { ArtifactsRepository } from '../repositories/artifacts.js';
import type { BuildRow, BuildsRepository, ClaimedBuild } from '../repositories/builds.js';
import type { ProjectsRepository } from '../repositories/projects.js';
import { packArtifact } from './artifact.js';
import type { BuildEventBus } from './events.js';
import { finishedLine, formatLine, planRun, randomForRun } from './simulator.js';

export interface RunSettings {
  /** Wall seconds per simulated second (0: no waiting at all). */
  timeScale: number;
  leaseMs: number;
  failRate: number;
  seed?: string;
  builds: BuildsRepository;
  projects: ProjectsRepository;
  artifacts: ArtifactsRepository;
  events: BuildEventBus;
  log: FastifyBaseLogger;
}

/** How a run ended: it wrote its terminal status, it was aborted (cancel, shutdown), or it lost the build. */
export type RunResult = 'finished' | 'aborted' | 'lost';

class LeaseLost extends Error {}

/**
 * Runs one claimed build: plans it, writes its log lines as their simulated time comes (lines due together go in one
 * write), renews the lease every third of its length, stores the artifact of a successful run, and finishes it.
 * Every write is conditional on still holding the build, so a canceled or taken-over run stops at its next write;
 * cancels also arrive as events, which abort the current wait at once.
 */
export async function runBuild(build: BuildRow | ClaimedBuild, owner: string, signal: AbortSignal, settings: RunSettings): Promise<RunResult> {
  const { builds, events, log } = settings;
  // The claim read the project's name and repository; only a build claimed some other way needs the lookup.
  const project =
    'project_name' in build && build.project_name !== null && build.project_repo !== null
      ? { id: build.project_id, name: build.project_name, repo: build.project_repo }
      : await settings.projects.findPlainById(build.project_id);
  if (!project) return 'lost';
  const plan = planRun({ project, build }, settings.failRate, randomForRun(settings.seed, build));

  const lost = new AbortController();
  const stop = AbortSignal.any([signal, lost.signal]);
  const renewal = setInterval(() => {
    builds.renewLease(build.id, owner, settings.leaseMs).then(
      (held) => {
        if (!held) lost.abort(new LeaseLost());
      },
      (error: unknown) => log.warn({ err: error, build_id: build.id }, 'could not renew a build lease'),
    );
  }, settings.leaseMs / 3);

  // The claim already wrote the "picked up by" line.
  let written = build.logs;
  let pending = '';
  const flush = async () => {
    if (pending === '') return;
    if (!(await builds.appendLog(build.id, owner, pending))) throw new LeaseLost();
    written += pending;
    pending = '';
    events.publish({ type: 'changed', build_id: build.id, status: 'running' });
  };

  let savedSha256: string | undefined;
  let result: RunResult | undefined;
  try {
    const startedAt = Date.now();
    for (const line of plan.lines) {
      const waitMs = startedAt + line.at_s * settings.timeScale * 1000 - Date.now();
      if (waitMs > 0) {
        await flush();
        await sleep(waitMs, undefined, { signal: stop });
      }
      if (stop.aborted) throw stop.reason;
      pending += formatLine(line);
    }
    if (plan.outcome === 'success') {
      const artifact = packArtifact({
        build,
        project,
        duration_s: plan.duration_s,
        log: written + pending,
        builtBy: owner,
        now: new Date(),
      });
      await settings.artifacts.save(build.id, artifact);
      savedSha256 = artifact.sha256;
      pending += `Artifact ${artifact.name}: ${artifact.size_bytes} bytes, sha256 ${artifact.sha256}\n`;
    }
    if (stop.aborted) throw stop.reason;
    const finished = await builds.finish(build.id, owner, {
      status: plan.outcome,
      duration_s: plan.duration_s,
      text: pending + finishedLine(plan.outcome, plan.duration_s),
    });
    if (!finished) return (result = 'lost');
    events.publish({ type: 'changed', build_id: build.id, status: finished.status });
    return (result = 'finished');
  } catch (error) {
    if (lost.signal.aborted || error instanceof LeaseLost) {
      log.warn({ build_id: build.id, owner }, 'build no longer held by this worker (canceled or taken over): stopped');
      return (result = 'lost');
    }
    if (signal.aborted) return (result = 'aborted');
    throw error;
  } finally {
    clearInterval(renewal);
    // The artifact is stored before the build is marked successful (so a success always has one); a run that did
    // not get that far (a cancel or a take-over in between) takes its artifact back, unless the build succeeded.
    if (savedSha256 !== undefined && result !== 'finished') {
      await settings.artifacts.discardUnlessSucceeded(build.id, savedSha256).catch((error: unknown) => {
        log.warn({ err: error, build_id: build.id }, 'could not discard the artifact of an unfinished run');
      });
    }
  }
}
