/**
 * The committed contract follows the code: openapi.json is the document the app serves, and
 * clients/typescript/usine.d.ts the types openapi-typescript generates from it. When a route changes, regenerate
 * both with `node --import tsx scripts/openapi.ts` (npm run openapi) and commit them with the change.
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_TYPES_FILE, generateClientTypes, OPENAPI_FILE, REGENERATE_COMMAND, renderDocument } from '../scripts/openapi.js';
import { testDb, useTestApp } from './helper.js';

describe(`Committed OpenAPI document and client types (${testDb})`, () => {
  const ctx = useTestApp();
  let live: unknown;

  beforeAll(async () => {
    const response = await ctx.app.inject({ method: 'GET', url: '/apidocs/json' });
    expect(response.statusCode).toBe(200);
    live = response.json();
  });

  it(`openapi.json is the live document (else: ${REGENERATE_COMMAND})`, () => {
    const committed = readFileSync(OPENAPI_FILE, 'utf8');
    // Structural comparison first, for a readable diff; then byte for byte (formatting included).
    expect(JSON.parse(committed), `openapi.json is stale: run ${REGENERATE_COMMAND}`).toEqual(live);
    expect(committed, `openapi.json is not formatted as the script writes it: run ${REGENERATE_COMMAND}`).toBe(renderDocument(live));
  });

  it(`clients/typescript/usine.d.ts is generated from it (else: ${REGENERATE_COMMAND})`, async () => {
    const committed = readFileSync(CLIENT_TYPES_FILE, 'utf8');
    expect(committed, `clients/typescript/usine.d.ts is stale: run ${REGENERATE_COMMAND}`).toBe(await generateClientTypes(live));
  }, 60_000);
});
