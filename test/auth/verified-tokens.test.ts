import { describe, expect, it } from 'vitest';
import { VerifiedTokens } from '../../src/auth/verified-tokens.js';

describe('VerifiedTokens', () => {
  it('answers a remembered token until its exp, then forgets it', () => {
    let now = 1000;
    const tokens = new VerifiedTokens<{ exp: number; sub: string }>({ nowS: () => now });
    expect(tokens.get('a')).toBeUndefined();
    tokens.remember('a', { exp: 1010, sub: '1' });
    expect(tokens.get('a')).toEqual({ exp: 1010, sub: '1' });
    now = 1009.9;
    expect(tokens.get('a')?.sub).toBe('1');
    now = 1010;
    expect(tokens.get('a')).toBeUndefined();
    expect(tokens.size).toBe(0);
  });

  it('keys by the exact token text', () => {
    const tokens = new VerifiedTokens<{ exp: number }>({ nowS: () => 0 });
    tokens.remember('header.payload.signature', { exp: 10 });
    expect(tokens.get('header.payload.signaturf')).toBeUndefined();
    expect(tokens.get('header.payload.signature ')).toBeUndefined();
    expect(tokens.get('header.payload.signature')).toEqual({ exp: 10 });
  });

  it('holds at most maxEntries, dropping the oldest first', () => {
    const tokens = new VerifiedTokens<{ exp: number }>({ maxEntries: 3, nowS: () => 0 });
    for (const name of ['t1', 't2', 't3', 't4']) tokens.remember(name, { exp: 10 });
    expect(tokens.size).toBe(3);
    expect(tokens.get('t1')).toBeUndefined();
    expect(['t2', 't3', 't4'].map((name) => tokens.get(name)?.exp)).toEqual([10, 10, 10]);
  });
});
