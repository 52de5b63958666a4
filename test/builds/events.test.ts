import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import type { Notifications } from '../../src/db/client.js';
import { createPgEventBus, parseEvents, type BuildEvent } from '../../src/builds/events.js';

/** A LISTEN/NOTIFY stand-in: every NOTIFY is recorded and held until the test lets it through (then heard back). */
function fakeNotifications() {
  const sent: string[] = [];
  const inFlight: Array<() => void> = [];
  let hear: (payload: string) => void = () => {};
  const notifications: Notifications = {
    listen: async (_channel, onPayload) => {
      hear = onPayload;
      return { unlisten: async () => {} };
    },
    notify: (_channel, payload) =>
      new Promise<void>((resolve) => {
        sent.push(payload);
        inFlight.push(() => {
          hear(payload);
          resolve();
        });
      }),
  };
  const deliverAll = async () => {
    while (inFlight.length > 0) inFlight.shift()!();
    await nextTurn();
  };
  return { notifications, sent, deliverAll };
}

const changed = (id: number): BuildEvent => ({ type: 'changed', build_id: id, status: 'running' });

describe('PostgreSQL build event bus', () => {
  it('sends one NOTIFY per turn, and what is published while it travels in the next one', async () => {
    const fake = fakeNotifications();
    const bus = await createPgEventBus(fake.notifications, (error) => {
      throw error;
    });
    const heard: BuildEvent[] = [];
    bus.subscribe((event) => heard.push(event));

    bus.publish(changed(1));
    bus.publish(changed(2));
    await nextTurn();
    expect(fake.sent.map(parseEvents)).toEqual([[changed(1), changed(2)]]);

    // The first NOTIFY is still on its way: these wait for it, then leave together.
    for (let id = 3; id <= 6; id++) {
      bus.publish(changed(id));
      await nextTurn();
    }
    expect(fake.sent).toHaveLength(1);
    await fake.deliverAll();
    expect(fake.sent.map(parseEvents)).toEqual([[changed(1), changed(2)], [3, 4, 5, 6].map(changed)]);
    await fake.deliverAll();

    // Every event is heard once, in order, and an idle bus sends the next event at once.
    expect(heard.map((event) => event.build_id)).toEqual([1, 2, 3, 4, 5, 6]);
    bus.publish(changed(7));
    await nextTurn();
    expect(fake.sent).toHaveLength(3);
    await fake.deliverAll();
    expect(heard.map((event) => event.build_id)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    await bus.close();
  });

  it('delivers locally what a failed NOTIFY carried, and keeps sending afterwards', async () => {
    let fail = true;
    const sent: string[] = [];
    let hear: (payload: string) => void = () => {};
    const errors: unknown[] = [];
    const bus = await createPgEventBus(
      {
        listen: async (_channel, onPayload) => {
          hear = onPayload;
          return { unlisten: async () => {} };
        },
        notify: async (_channel, payload) => {
          sent.push(payload);
          if (fail) throw new Error('connection lost');
          hear(payload);
        },
      },
      (error) => errors.push(error),
    );
    const heard: number[] = [];
    bus.subscribe((event) => heard.push(event.build_id));
    bus.publish(changed(1));
    await nextTurn();
    await nextTurn();
    expect(errors).toHaveLength(1);
    expect(heard).toEqual([1]);
    fail = false;
    bus.publish(changed(2));
    await nextTurn();
    await nextTurn();
    expect(heard).toEqual([1, 2]);
    expect(sent).toHaveLength(2);
    await bus.close();
  });
});
