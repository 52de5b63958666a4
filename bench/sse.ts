/**
 * Live log streams under many listeners. `slots` loops run at once; each triggers a build, opens `perSlot` SSE streams
 * on it (GET /builds/:id/logs, Accept: text/event-stream, one connection each), waits for every stream's `end`
 * event, then starts over, until `until()` says stop. So about slots × perSlot streams are open all the time.
 *
 * Latency of a line = when a client received it − when the worker was due to write it. The due time is its job's
 * `started_at` + the line's `[mm:ss.SSS]` simulated offset × BUILD_TIME_SCALE (a job's lines are prefixed with its
 * name in the build's log, and src/builds/job-engine.ts writes a line as its time comes); it includes the database
 * write, the event and the stream's re-read, and a millisecond or so of the worker's set-up (it starts its clock just
 * after the claim that set the job's `started_at`).
 */
import { apiClient } from '../test/processes.js';
import { openEventStream } from '../test/sse-client.js';

export interface StreamLoad {
  baseUrl: string;
  token: string;
  projectId: number;
  slots: number;
  perSlot: number;
  timeScale: number;
  until: () => boolean;
}

export interface StreamStats {
  streams: number;
  builds: number;
  events: number;
  seconds: number;
  eventsPerS: number;
  latencyP50: number;
  latencyP99: number;
  /** Streams that ended without an `end` event (cut, error answer). */
  failed: number;
}

const STEP_LINE = /^\[(.+?)\] \[(\d+):(\d{2})\.(\d{3})\] /;

export const percentile = (sorted: readonly number[], p: number) =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

export async function followBuilds(load: StreamLoad): Promise<StreamStats> {
  const api = apiClient(load.baseUrl, load.token);
  const headers = { authorization: `Bearer ${load.token}` };
  const latencies: number[] = [];
  let events = 0;
  let streams = 0;
  let builds = 0;
  let failed = 0;
  const started = Date.now();

  const slot = async () => {
    while (!load.until()) {
      const build = await api.expect<{ id: number }>(201, 'POST', `/projects/${load.projectId}/builds`);
      const opened = await Promise.all(
        Array.from({ length: load.perSlot }, () => openEventStream(`${load.baseUrl}/builds/${build.id}/logs`, headers, { transport: 'http' })),
      );
      streams += opened.length;
      await Promise.all(opened.map((stream) => stream.closed));
      const jobs = await api.expect<{ items: { name: string; retried: boolean; started_at: string | null }[] }>(200, 'GET', `/builds/${build.id}/jobs`);
      const jobStarts = new Map(jobs.items.filter((job) => !job.retried).map((job) => [job.name, Date.parse(job.started_at ?? '')]));
      builds++;
      for (const stream of opened) {
        const received = stream.events();
        if (!received.some((event) => event.event === 'end')) failed++;
        for (const event of received) {
          if (event.event !== 'message') continue;
          events++;
          const match = STEP_LINE.exec(event.data);
          const start = jobStarts.get(match?.[1] ?? '');
          if (!match || start === undefined || !Number.isFinite(start)) continue;
          const offsetMs = (Number(match[2]) * 60 + Number(match[3])) * 1000 + Number(match[4]);
          latencies.push(event.at - (start + offsetMs * load.timeScale));
        }
      }
    }
  };
  await Promise.all(Array.from({ length: load.slots }, slot));
  const seconds = (Date.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    streams,
    builds,
    events,
    seconds,
    eventsPerS: events / seconds,
    latencyP50: percentile(latencies, 50),
    latencyP99: percentile(latencies, 99),
    failed,
  };
}
