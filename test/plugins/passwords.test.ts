import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { hashConcurrency, limiter } from '../../plugins/app/passwords.js';
import { lowerThreadPoolPriority } from '../../src/threadpool-priority.js';

describe('hashConcurrency', () => {
  it('gives logins every core unless other requests keep the event loop busy, then keeps one core for them', () => {
    expect(hashConcurrency(0.1, 0, 2)).toBe(2);
    expect(hashConcurrency(0.9, 0, 2)).toBe(2); // busy with logins alone
    expect(hashConcurrency(0.1, 500, 2)).toBe(2); // other requests, but the loop has room
    expect(hashConcurrency(0.9, 500, 2)).toBe(1);
    expect(hashConcurrency(0.9, 500, 4)).toBe(3);
    expect(hashConcurrency(0.9, 500, 1)).toBe(1);
  });
});

describe('limiter', () => {
  const deferred = () => {
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    return { promise, resolve };
  };

  it('runs at most limit() tasks at once, in arrival order, and starts more when the limit grows', async () => {
    let limit = 1;
    const run = limiter(() => limit);
    const started: number[] = [];
    const gates = [deferred(), deferred(), deferred()];
    const tasks = gates.map((gate, index) =>
      run(async () => {
        started.push(index);
        await gate.promise;
        return index;
      }),
    );
    await Promise.resolve();
    expect(started).toEqual([0]);
    limit = 2;
    run.pump();
    await Promise.resolve();
    expect(started).toEqual([0, 1]);
    gates[0]!.resolve();
    await tasks[0];
    await Promise.resolve();
    expect(started).toEqual([0, 1, 2]);
    gates[1]!.resolve();
    gates[2]!.resolve();
    expect(await Promise.all(tasks)).toEqual([0, 1, 2]);
  });

  it('frees its slot when a task fails', async () => {
    const run = limiter(() => 1);
    await expect(run(async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await run(async () => 'next')).toBe('next');
  });
});

describe('lowerThreadPoolPriority', () => {
  it.runIf(process.platform === 'linux')("raises the nice value of the thread pool's threads only", async () => {
    const nice = (task: string) => Number(readFileSync(`/proc/self/task/${task}/stat`, 'utf8').split(') ')[1]?.split(' ')[16]);
    const changed = await lowerThreadPoolPriority(5);
    expect(changed).toBeGreaterThanOrEqual(1);
    expect(nice(String(process.pid))).toBe(0);
  });
});
