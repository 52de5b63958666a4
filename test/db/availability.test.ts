import { afterEach, describe, expect, it } from 'vitest';
import { DatabaseAvailability } from '../../src/db/availability.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A database whose ping the test controls: answering, refusing, or never settling. */
function fakeDatabase() {
  let mode: 'up' | 'down' | 'silent' = 'up';
  let pings = 0;
  return {
    set: (next: typeof mode) => {
      mode = next;
    },
    get pings() {
      return pings;
    },
    ping: async () => {
      pings++;
      if (mode === 'down') throw new Error('connect ECONNREFUSED');
      if (mode === 'silent') await new Promise(() => undefined);
    },
  };
}

async function until(condition: () => boolean, ms = 2000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; ) {
    if (condition()) return true;
    await sleep(5);
  }
  return condition();
}

describe('DatabaseAvailability (the database circuit)', () => {
  let circuit: DatabaseAvailability | undefined;
  afterEach(() => circuit?.stop());

  it('opens when the background ping fails and closes when it succeeds again, telling every change once', async () => {
    const database = fakeDatabase();
    const changes: boolean[] = [];
    circuit = new DatabaseAvailability({ ping: database.ping, intervalMs: 20, timeoutMs: 100, onChange: (available) => changes.push(available) });
    circuit.start();
    expect(circuit.available).toBe(true);
    database.set('down');
    expect(await until(() => !circuit!.available)).toBe(true);
    database.set('up');
    expect(await until(() => circuit!.available)).toBe(true);
    expect(changes).toEqual([false, true]);
  });

  it('counts a ping that never settles as failed, after its timeout', async () => {
    const database = fakeDatabase();
    circuit = new DatabaseAvailability({ ping: database.ping, intervalMs: 10_000, timeoutMs: 50 });
    database.set('silent');
    expect(await circuit.check()).toBe(false);
    expect(circuit.available).toBe(false);
  });

  it('pings at once when a query is suspected of a lost connection, and stays closed if the ping answers', async () => {
    const database = fakeDatabase();
    circuit = new DatabaseAvailability({ ping: database.ping, intervalMs: 60_000, timeoutMs: 100 });
    circuit.start();
    circuit.suspect();
    expect(await until(() => database.pings === 1)).toBe(true);
    await sleep(10);
    expect(circuit.available).toBe(true);
    database.set('down');
    circuit.suspect();
    expect(await until(() => !circuit!.available)).toBe(true);
  });

  it('sends one ping at a time', async () => {
    const database = fakeDatabase();
    database.set('silent');
    circuit = new DatabaseAvailability({ ping: database.ping, intervalMs: 60_000, timeoutMs: 1000 });
    const first = circuit.check();
    await circuit.check();
    await circuit.check();
    expect(database.pings).toBe(1);
    await first;
  });
});
