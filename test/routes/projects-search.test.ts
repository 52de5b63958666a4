import { describe, expect, it } from 'vitest';
import { unicodeLower } from '../../src/db/client.js';
import { injectAs, testDb, useTestApp } from '../helper.js';

/**
 * `?q=` matches case-insensitively beyond ASCII, with the same results on SQLite and PostgreSQL: both lower the name
 * and the text with Unicode's simple case mapping (no accent folding, no full case folding: `ß` is not `ss`).
 */
describe(`GET /projects?q= beyond ASCII (${testDb})`, () => {
  const ctx = useTestApp();
  const NAMES = ['École centrale', 'ecole sans accent', 'Straße', 'STRASSE', 'ΟΔΟΣ', '100%_done', '100x done', 'CAFÉ crème'];

  async function search(q: string): Promise<string[]> {
    const response = await injectAs(ctx.app, ctx.adminToken, { method: 'GET', url: `/projects?per_page=100&q=${encodeURIComponent(q)}` });
    expect(response.statusCode, response.body).toBe(200);
    const body = response.json<{ items: { name: string }[]; total: number }>();
    expect(body.total, q).toBe(body.items.length);
    return body.items.map((project) => project.name).sort();
  }

  it('creates the projects searched below', async () => {
    for (const name of NAMES) {
      const response = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: '/projects', payload: { name, repo: 'https://github.com/usine/search' } });
      expect(response.statusCode, response.body).toBe(201);
    }
  });

  it('finds École whatever the case of its accented capital: école, École, ÉCOLE', async () => {
    for (const q of ['école', 'École', 'ÉCOLE', 'éCoLe']) expect(await search(q), q).toEqual(['École centrale']);
    // Accents are not folded away: `ecole` is another word.
    expect(await search('ecole')).toEqual(['ecole sans accent']);
    expect(await search('café CRÈME')).toEqual(['CAFÉ crème']);
  });

  it('lowers ß to itself (simple mapping, no full folding): straße and STRAßE find Straße, STRASSE only STRASSE', async () => {
    expect(await search('straße')).toEqual(['Straße']);
    expect(await search('STRAßE')).toEqual(['Straße']);
    expect(await search('STRASSE')).toEqual(['STRASSE']);
    expect(await search('strasse')).toEqual(['STRASSE']);
  });

  it('maps a final capital sigma as PostgreSQL does (σ), whichever sigma is searched', async () => {
    expect(await search('οδοσ')).toEqual(['ΟΔΟΣ']);
    expect(await search('ΟΔΟΣ')).toEqual(['ΟΔΟΣ']);
  });

  it('still takes % and _ literally', async () => {
    expect(await search('0%_d')).toEqual(['100%_done']);
    expect(await search('%')).toEqual(['100%_done']);
    expect(await search('_')).toEqual(['100%_done']);
    expect(await search('0_d')).toEqual([]);
  });

  it('lists every project without q (total from the counter), and only them', async () => {
    expect(await search('')).toEqual([...NAMES].sort());
  });
});

describe('unicodeLower (SQLite’s usine_lower)', () => {
  it('is the simple case mapping: one character for one, İ to i, a final Σ to σ', () => {
    expect(unicodeLower('ÉCOLE Straße STRAẞE')).toBe('école straße straße');
    expect(unicodeLower('İSTANBUL')).toBe('istanbul');
    expect(unicodeLower('ΟΔΟΣ ΣΑΣ')).toBe('οδοσ σασ');
    expect(unicodeLower('ǅ')).toBe('ǆ');
  });
});
