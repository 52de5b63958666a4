import { describe, expect, it } from 'vitest';
import { WaitingLine } from '../../src/http/waiting-line.js';

describe('WaitingLine (requests waiting on the database)', () => {
  it('takes out, oldest first, exactly the entries that started at or before the cutoff', () => {
    const line = new WaitingLine<string>();
    line.add('a', 10);
    line.add('b', 20);
    line.add('c', 30);
    expect(line.takeSince(5)).toEqual([]);
    expect(line.takeSince(20)).toEqual(['a', 'b']);
    expect(line.size).toBe(1);
    expect(line.takeSince(100)).toEqual(['c']);
    expect(line.size).toBe(0);
  });

  it('forgets a removed entry wherever it stands, and a second removal changes nothing', () => {
    const line = new WaitingLine<string>();
    const first = line.add('first', 1);
    const middle = line.add('middle', 2);
    const last = line.add('last', 3);
    line.remove(middle);
    line.remove(middle);
    expect(line.size).toBe(2);
    line.remove(first);
    line.remove(last);
    expect(line.size).toBe(0);
    // Emptied from both ends, the line still takes new entries at its end.
    line.add('again', 4);
    line.add('later', 5);
    expect(line.takeSince(10)).toEqual(['again', 'later']);
  });

  it('keeps the order and the count through a long run of additions and removals in any order', () => {
    const line = new WaitingLine<number>();
    const waiters = Array.from({ length: 1000 }, (_, index) => line.add(index, index));
    // Every third entry finishes early, in reverse order.
    for (let index = 999; index >= 0; index -= 3) line.remove(waiters[index]!);
    const remaining = Array.from({ length: 1000 }, (_, index) => index).filter((index) => (999 - index) % 3 !== 0);
    expect(line.size).toBe(remaining.length);
    expect(line.takeSince(499)).toEqual(remaining.filter((index) => index <= 499));
    expect(line.takeSince(Infinity)).toEqual(remaining.filter((index) => index > 499));
    // An entry already taken by the sweep is not counted twice when its request finishes afterwards.
    line.remove(waiters[0]!);
    expect(line.size).toBe(0);
  });
});
