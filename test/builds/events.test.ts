import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Notifications } from '../../src/db/client.js';
import { batchPayloads, createPgEventBus, parseEvents, type BuildEvent } from '../../src/builds/events.js';

/**
 * A LISTEN/NOTIFY stand-in shared by several "processes": every NOTIFY is recorded and held until the test lets it
 * through, then every listener hears it (the sender included, as PostgreSQL does).
 */
function fakeDatabase() {
  const sent: string[] = [];
  const inFlight: Array<() => void> = [];
  const listeners: Array<(payload: string) => void> = [];
  let failing = false;
  const notifications = (): Notifications => ({
    listen: async (_channel, onPayload) => {
      listeners.push(onPayload);
      return { unlisten: async () => {} };
    },
    notify: (_channel, payload) =>
      new Promise<void>((resolve, reject) => {
        sent.push(payload);
        if (failing) return reject(new Error('connection lost'));
        inFlight.push(() => {
          for (const hear of listeners) hear(payload);
          resolve();
        });
      }),
  });
  return {
    notifications,
    sent,
    /** Lets every NOTIFY on its way through. */
    deliverAll: async () => {
      while (inFlight.length > 0) inFlight.shift()!();
      await vi.advanceTimersByTimeAsync(0);
    },
    /** A payload another process's bus would send, or an older process's plain array. */
    hearFromElsewhere: (payload: string) => listeners.forEach((hear) => hear(payload)),
    failNotifies: (fail: boolean) => (failing = fail),
  };
}

const changed = (id: number): BuildEvent => ({ type: 'changed', build_id: id, status: 'running' });
const ids = (events: BuildEvent[]) => events.map((event) => ('build_id' in event ? event.build_id : undefined));

async function bus(database: ReturnType<typeof fakeDatabase>, intervalMs = 10, errors: unknown[] = []) {
  const created = await createPgEventBus(database.notifications(), (error) => errors.push(error), { intervalMs });
  const heard: BuildEvent[] = [];
  created.subscribe((event) => heard.push(event));
  return { bus: created, heard, errors };
}

describe('PostgreSQL build event bus', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("hands this process's events to its subscribers at once, and once: its own NOTIFY coming back is skipped", async () => {
    const database = fakeDatabase();
    const { bus: one, heard } = await bus(database);
    one.publish(changed(1));
    expect(ids(heard)).toEqual([1]);
    await vi.advanceTimersByTimeAsync(1);
    expect(database.sent).toHaveLength(1);
    await database.deliverAll();
    expect(ids(heard)).toEqual([1]);
    await one.close();
  });

  it("hands every other process's events to its subscribers, from its NOTIFYs and from an older process's plain arrays", async () => {
    const database = fakeDatabase();
    const { bus: sender, heard: senderHeard } = await bus(database);
    const { bus: receiver, heard } = await bus(database);
    sender.publish(changed(1));
    sender.publish({ type: 'queued', build_id: 2 });
    expect(heard).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    await database.deliverAll();
    expect(heard).toEqual([changed(1), { type: 'queued', build_id: 2 }]);
    expect(ids(senderHeard)).toEqual([1, 2]);

    database.hearFromElsewhere(JSON.stringify([changed(3), { type: 'bogus', build_id: 4 }]));
    database.hearFromElsewhere('not json');
    expect(ids(heard)).toEqual([1, 2, 3]);
    await sender.close();
    await receiver.close();
  });

  it('under load sends one NOTIFY per interval at most, with one in flight at a time, and at once when idle', async () => {
    const database = fakeDatabase();
    const { bus: one } = await bus(database, 10);
    one.publish(changed(1));
    one.publish(changed(2));
    await vi.advanceTimersByTimeAsync(1);
    expect(database.sent.map(parseEvents)).toEqual([[changed(1), changed(2)]]);

    // While the first NOTIFY travels, and until the interval since it has passed, events wait and then leave together.
    for (let id = 3; id <= 6; id++) {
      one.publish(changed(id));
      await vi.advanceTimersByTimeAsync(1);
    }
    expect(database.sent).toHaveLength(1);
    await database.deliverAll();
    expect(database.sent).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(4);
    expect(database.sent).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(2);
    expect(database.sent.map(parseEvents)).toEqual([[changed(1), changed(2)], [3, 4, 5, 6].map(changed)]);
    await database.deliverAll();

    // Idle for longer than the interval: the next event leaves on the next timer turn.
    await vi.advanceTimersByTimeAsync(50);
    one.publish(changed(7));
    await vi.advanceTimersByTimeAsync(1);
    expect(database.sent.map(parseEvents).at(-1)).toEqual([changed(7)]);
    await database.deliverAll();
    await one.close();
  });

  it('reports a failed NOTIFY and keeps sending afterwards; this process heard the events anyway', async () => {
    const database = fakeDatabase();
    const errors: unknown[] = [];
    const { bus: one, heard } = await bus(database, 10, errors);
    database.failNotifies(true);
    one.publish(changed(1));
    await vi.advanceTimersByTimeAsync(1);
    expect(errors).toHaveLength(1);
    expect(ids(heard)).toEqual([1]);

    database.failNotifies(false);
    one.publish(changed(2));
    await vi.advanceTimersByTimeAsync(20);
    expect(database.sent.map(parseEvents)).toEqual([[changed(1)], [changed(2)]]);
    expect(ids(heard)).toEqual([1, 2]);
    await database.deliverAll();
    await one.close();
  });

  it('on close sends what is still waiting without waiting for the interval', async () => {
    const database = fakeDatabase();
    const { bus: one } = await bus(database, 1000);
    one.publish(changed(1));
    await vi.advanceTimersByTimeAsync(1);
    await database.deliverAll();
    one.publish({ type: 'queued', build_id: 2 });
    await one.close();
    expect(database.sent.map(parseEvents)).toEqual([[changed(1)], [{ type: 'queued', build_id: 2 }]]);
  });
});

describe('batchPayloads', () => {
  it('splits events into tagged NOTIFY payloads under 7,000 bytes that carry them all, in order', () => {
    const events = Array.from({ length: 400 }, (_, index) => changed(index + 1_000_000));
    const payloads = batchPayloads('a1b2c3', events);
    expect(payloads.length).toBeGreaterThan(1);
    for (const payload of payloads) {
      expect(Buffer.byteLength(payload)).toBeLessThan(7000);
      expect(payload.startsWith('{"from":"a1b2c3"')).toBe(true);
    }
    expect(payloads.flatMap(parseEvents)).toEqual(events);
  });
});
