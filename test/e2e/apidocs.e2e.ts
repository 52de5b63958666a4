/**
 * Swagger UI at /apidocs in a real browser: headless Chromium (playwright-core, CHROMIUM_PATH or /usr/bin/chromium)
 * against a listening server. The page renders every tag and operation of the document; "Try it out" on POST /login
 * returns a token; "Authorize" with it; then GET /projects and POST /projects/{id}/build answer 200 and 201 inside the
 * page. A screenshot goes to test/artifacts/ on every run, pass or fail. Run with `npm run test:e2e`.
 */
import { existsSync, mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { chromium, type Browser, type ConsoleMessage, type Locator, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from '../../src/server.js';
import { createScratchDatabase, testConfig, testDb, type ScratchDatabase } from '../helper.js';
import { createProject, login, openApiDocument, type Build, type LoginAnswer, type OpenApiDocument, type Project, type ProjectPage } from './api.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url));
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
/** How long the page gets for one step (render, an answer to Execute). */
const STEP_MS = 15_000;

/** Console errors tolerated, each for a known reason: none today (the CSP allows Swagger UI's one inline style). */
const KNOWN_CONSOLE_ERRORS: RegExp[] = [];

/** One operation's block in the page: `.opblock-<method>` whose summary shows exactly this path. */
function operation(page: Page, method: string, path: string): Locator {
  return page
    .locator(`.opblock.opblock-${method.toLowerCase()}`)
    .filter({ has: page.locator(`.opblock-summary-path[data-path="${path}"]`) })
    .first();
}

/** Expands an operation and presses "Try it out" (the page has tryItOutEnabled: false). */
async function tryItOut(block: Locator): Promise<void> {
  await block.locator('.opblock-summary').first().click();
  await block.locator('button.try-out__btn').click();
  await expect.poll(() => block.locator('button.execute').count(), { timeout: STEP_MS }).toBe(1);
}

interface Shown {
  status: number;
  body: string;
}

/** Presses Execute and reads what Swagger UI shows: the live response's status code and body. */
async function execute(block: Locator): Promise<Shown> {
  await block.locator('button.execute').click();
  const statusCell = block.locator('.live-responses-table .response .response-col_status').first();
  await statusCell.waitFor({ state: 'visible', timeout: STEP_MS });
  const statusText = (await statusCell.innerText()).trim();
  const body = block.locator('.live-responses-table .response .response-col_description .highlight-code pre').first();
  const shown = (await body.count()) > 0 ? await body.innerText() : '';
  return { status: Number(/^\d{3}/.exec(statusText)?.[0] ?? NaN), body: shown };
}

/** Every (tag, method, path) the document lists: Swagger UI shows an operation once under each of its tags. */
function expectedOperations(document: OpenApiDocument): { tag: string; method: string; path: string }[] {
  return Object.entries(document.paths).flatMap(([path, item]) =>
    Object.entries(item)
      .filter(([method]) => METHODS.includes(method))
      .flatMap(([method, op]) => (op.tags?.length ? op.tags : ['default']).map((tag) => ({ tag, method, path }))),
  );
}

describe(`Swagger UI at /apidocs in headless Chromium (${testDb})`, () => {
  let app: FastifyInstance | undefined;
  let scratch: ScratchDatabase | undefined;
  let browser: Browser | undefined;
  let page: Page | undefined;
  let baseUrl = '';
  let seeded: Project | undefined;
  const problems: string[] = [];

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`No Chromium at ${CHROMIUM}: install it (apt-get install -y chromium) or set CHROMIUM_PATH`);
    }
    scratch = await createScratchDatabase();
    app = await createServer(testConfig(scratch.url, { BUILD_TIME_SCALE: '0.05' }), { logger: false });
    await app.listen({ port: 0, host: '127.0.0.1' });
    baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

    // A project to build, created through the API itself (typed with the generated client).
    const session = await login(baseUrl);
    seeded = await createProject(baseUrl, session.access_token, { name: 'BrowserProj', repo: 'https://github.com/demo/browser' });

    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu'] });
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    // Script errors and refused resources (a content security policy too strict for the page, a missing file).
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('console', (message: ConsoleMessage) => {
      const text = message.text();
      if (message.type() === 'error' && !KNOWN_CONSOLE_ERRORS.some((known) => known.test(text))) problems.push(`console error: ${text}`);
    });
    page.on('requestfailed', (request) => problems.push(`request failed: ${request.url()} ${request.failure()?.errorText ?? ''}`));
  });

  afterAll(async () => {
    if (page) {
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: `${ARTIFACTS}apidocs-${testDb}.png`, fullPage: true }).catch(() => undefined);
    }
    await browser?.close();
    await app?.close();
    await scratch?.drop();
  });

  it('renders the document: title, version, every tag and every operation', async () => {
    if (!page) throw new Error('no page');
    const document = await openApiDocument(baseUrl);
    const response = await page.goto(`${baseUrl}/apidocs`, { waitUntil: 'load' });
    expect(response?.status()).toBe(200);

    const title = page.locator('.swagger-ui .info .title').first();
    await title.waitFor({ state: 'visible', timeout: STEP_MS });
    expect(await title.innerText()).toContain(document.info.title);
    expect(await title.innerText()).toContain(document.info.version);

    const operations = expectedOperations(document);
    const tags = [...new Set([...(document.tags ?? []).map((tag) => tag.name), ...operations.map((op) => op.tag)])];
    expect(tags.length).toBeGreaterThanOrEqual(5);
    await expect
      .poll(() => page?.locator('.opblock-tag-section h3.opblock-tag').evaluateAll((nodes) => nodes.map((node) => node.getAttribute('data-tag'))), {
        timeout: STEP_MS,
      })
      .toEqual(expect.arrayContaining(tags));
    expect(await page.locator('.opblock-tag-section').count()).toBe(tags.length);

    // Every operation of the document, under each of its tags (the default docExpansion lists them all).
    expect(await page.locator('.opblock').count()).toBe(operations.length);
    for (const { tag, method, path } of operations) {
      const section = page.locator('.opblock-tag-section').filter({ has: page.locator(`h3.opblock-tag[data-tag="${tag}"]`) });
      const block = section.locator(`.opblock.opblock-${method}`).filter({ has: page.locator(`.opblock-summary-path[data-path="${path}"]`) });
      expect(await block.count(), `${method.toUpperCase()} ${path} under ${tag}`).toBe(1);
    }
    expect(problems, 'the page loads without script errors or refused resources').toEqual([]);
  });

  it('logs in with "Try it out", authorizes with the token, then lists projects (200) and triggers a build (201)', async () => {
    if (!page || !seeded) throw new Error('no page');

    // POST /login: the body is typed into the page's editor; the token is read from the response it shows.
    const loginBlock = operation(page, 'post', '/login');
    await tryItOut(loginBlock);
    await loginBlock.locator('textarea.body-param__text').fill(JSON.stringify({ username: 'admin', password: 'admin123' }));
    const loggedIn = await execute(loginBlock);
    expect(loggedIn.status, loggedIn.body).toBe(200);
    const answer = JSON.parse(loggedIn.body) as LoginAnswer;
    expect(answer.token_type).toBe('bearer');
    expect(answer.access_token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);

    // Authorize: the bearerAuth scheme of the document, filled in the modal.
    await page.locator('.auth-wrapper button.authorize').click();
    const modal = page.locator('.modal-ux');
    await modal.waitFor({ state: 'visible', timeout: STEP_MS });
    await modal.locator('input[aria-label="auth-bearer-value"]').fill(answer.access_token);
    await modal.locator('button.authorize').click();
    // The scheme now shows "Authorized" and offers "Logout" instead of "Authorize".
    await modal.locator('button[aria-label="Remove authorization"]').waitFor({ state: 'visible', timeout: STEP_MS });
    expect(await modal.locator('h6', { hasText: 'Authorized' }).count()).toBe(1);
    await modal.locator('button.btn-done').click();
    await modal.waitFor({ state: 'hidden', timeout: STEP_MS });
    await expect.poll(() => page?.locator('.auth-wrapper button.authorize.locked').count(), { timeout: STEP_MS }).toBe(1);

    // GET /projects with the token: the seeded project is listed.
    const listBlock = operation(page, 'get', '/projects');
    await tryItOut(listBlock);
    // Swagger UI pre-fills each parameter with its example (`q=demo`): clear the name filter, as a user would.
    await listBlock.locator('tr[data-param-name="q"] input').fill('');
    const listed = await execute(listBlock);
    expect(listed.status, listed.body).toBe(200);
    const projects = JSON.parse(listed.body) as ProjectPage;
    // The curl command Swagger UI shows for it carries the token.
    const curl = await listBlock.locator('.curl-command').first().innerText();
    expect(curl).toContain(`Bearer ${answer.access_token}`);
    expect(projects.items.map((project) => project.name), curl).toContain(seeded.name);

    // POST /projects/{id}/build on the seeded project, with the body Swagger UI pre-fills from the example: a queued build.
    const buildBlock = operation(page, 'post', '/projects/{id}/build');
    await tryItOut(buildBlock);
    await buildBlock.locator('tr[data-param-name="id"] input').fill(String(seeded.id));
    const sent = await buildBlock.locator('textarea.body-param__text').inputValue();
    const built = await execute(buildBlock);
    expect(built.status, `${sent}\n${built.body}`).toBe(201);
    const build = JSON.parse(built.body) as Build;
    expect(build).toMatchObject({ project_id: seeded.id, number: 1, status: 'queued' });
    expect(await buildBlock.locator('.live-responses-table .response-col_description pre', { hasText: 'location: /builds/' }).count()).toBe(1);

    expect(problems, 'no script errors or refused resources along the way').toEqual([]);
  });
});
