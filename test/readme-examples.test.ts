/**
 * Docs that cannot rot: every curl example of README.md runs, through bash and the real curl binary, against a
 * really listening server on a fresh database, and must answer the status written under it.
 *
 * The convention (README.md, "Interactive docs and browser tests"): in a ```bash block, each command that calls curl
 * is followed by a comment line `# → <status>` (free text may follow the number). The blocks run top to bottom on one
 * fresh server, each block's commands in order, as a reader following the README would (login, create project 1,
 * build 1…). `http://localhost:5000` becomes the test server's address; `<token>` and `$TOKEN` are a real access
 * token (the one returned by the block's own login when it has one, else a fresh one), `<refresh_token>` a real
 * refresh token; `TOKEN=$(curl …)` assignments carry over to the block's next commands; downloads land in a temp dir.
 * The test fails on a curl line without an expected status, a stray annotation, or a curl outside a bash block.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { paths } from '../clients/typescript/usine.js';
import { createServer } from '../src/server.js';
import { createScratchDatabase, testConfig, testDb, type ScratchDatabase } from './helper.js';

const README = new URL('../README.md', import.meta.url);
const SEED_DIR = new URL('../../shared/seed/', import.meta.url);
const README_BASE_URL = 'http://localhost:5000';
const ANNOTATION = /^#\s*→\s*(\d{3})\b/;
const CURL = /(^|[\s$(|;&])curl\s/;
const SHELL_LANGUAGES = new Set(['bash', 'sh', 'shell', 'console']);

/**
 * Builds that run live but fast (2–10 simulated seconds × 0.05: the SSE examples stream real events and end within
 * half a second) and always succeed, so the artifact examples find an artifact on build 1; the webhook examples' local
 * receiver is allowed, as the README says it must be.
 */
const SERVER_ENV = { BUILD_TIME_SCALE: '0.05', BUILD_FAIL_RATE: '0', WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true' };

export interface CurlExample {
  /** 1-based line of the command's first line in README.md. */
  line: number;
  /** The command as written, continuation lines included. */
  command: string;
  expected: number;
}

export interface CurlBlock {
  /** 1-based line of the opening fence. */
  line: number;
  examples: CurlExample[];
}

/** The fenced code blocks holding curl commands, each command with the status annotated under it; throws on breaches. */
export function extractCurlExamples(markdown: string): CurlBlock[] {
  const lines = markdown.split('\n');
  const blocks: CurlBlock[] = [];
  const problems: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const fence = /^(\s*)(`{3,}|~{3,})\s*([\w-]*)/.exec(lines[i] ?? '');
    if (!fence) {
      if (/^\s*(\$\s*)?curl\s/.test(lines[i] ?? '')) problems.push(`line ${i + 1}: a curl command outside a code block`);
      continue;
    }
    const marker = fence[2] ?? '```';
    const language = (fence[3] ?? '').toLowerCase();
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !(lines[i] ?? '').trim().startsWith(marker); i++) body.push(lines[i] ?? '');
    const hasCurl = body.some((text) => !text.trim().startsWith('#') && CURL.test(` ${text}`));
    if (!hasCurl) continue;
    if (!SHELL_LANGUAGES.has(language)) {
      problems.push(`line ${start + 1}: a \`\`\`${language} block holds curl commands: make it \`\`\`bash, annotated`);
      continue;
    }
    const block: CurlBlock = { line: start + 1, examples: [] };
    for (let j = 0; j < body.length; j++) {
      const text = body[j] ?? '';
      const trimmed = text.trim();
      const lineNo = start + 2 + j;
      if (trimmed === '') continue;
      if (trimmed.startsWith('#')) {
        if (ANNOTATION.test(trimmed)) problems.push(`line ${lineNo}: \`${trimmed}\` follows no curl command`);
        continue;
      }
      // One logical command: the line and its `\` continuations.
      const first = j;
      while ((body[j] ?? '').endsWith('\\') && j + 1 < body.length) j++;
      const command = body.slice(first, j + 1).join('\n');
      const firstLine = start + 2 + first;
      if (!CURL.test(` ${command}`)) {
        problems.push(`line ${firstLine}: \`${trimmed}\` is not a curl command; keep other commands out of curl blocks`);
        continue;
      }
      const annotation = ANNOTATION.exec((body[j + 1] ?? '').trim());
      if (!annotation) {
        problems.push(`line ${firstLine}: curl command without \`# → <status>\` on the next line: ${trimmed}`);
        continue;
      }
      block.examples.push({ line: firstLine, command, expected: Number(annotation[1]) });
      j++;
    }
    blocks.push(block);
  }
  if (problems.length > 0) throw new Error(`README.md curl examples:\n  ${problems.join('\n  ')}`);
  return blocks;
}

type LoginBody = paths['/login']['post']['requestBody']['content']['application/json'];
type LoginAnswer = paths['/login']['post']['responses'][200]['content']['application/json'];

interface Session {
  token: string;
  refreshToken: string;
}

/** A fresh session of the seeded admin, by a typed call of `POST /login`. */
async function login(baseUrl: string): Promise<Session> {
  const body: LoginBody = { username: 'admin', password: 'admin123' };
  const response = await fetch(`${baseUrl}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(response.status).toBe(200);
  const answer = (await response.json()) as LoginAnswer;
  return { token: answer.access_token, refreshToken: answer.refresh_token };
}

interface Outcome {
  exitCode: number;
  statuses: number[];
  stdout: string;
  stderr: string;
}

/**
 * `curl` inside the example is a shell function around the real binary that adds a time limit and writes the status
 * to stderr (curl's `%{stderr}`), so pipes and `$(…)` see the example's own output only.
 */
const PRELUDE = `set -eo pipefail
curl() { command curl -q --max-time 20 --write-out '%{stderr}\\n@usine-status %{http_code}\\n' "$@"; }
`;

/** Runs one example through bash, in `cwd`, with TOKEN set; returns what it printed and TOKEN afterwards. */
function runExample(script: string, cwd: string, token: string): Promise<Outcome & { token: string }> {
  const tokenFile = join(cwd, '.token-after');
  rmSync(tokenFile, { force: true });
  const full = `${PRELUDE}${script}\nprintf '%s' "\${TOKEN-}" > "$USINE_TOKEN_FILE"\n`;
  return new Promise((resolve) => {
    execFile(
      'bash',
      ['--noprofile', '--norc', '-c', full],
      {
        cwd,
        encoding: 'utf8',
        timeout: 40_000,
        maxBuffer: 16 * 1024 * 1024,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: cwd, LANG: 'C.UTF-8', TOKEN: token, USINE_TOKEN_FILE: tokenFile },
      },
      (error, stdout, stderr) => {
        const statuses = [...stderr.matchAll(/^@usine-status (\d{3})$/gm)].map((match) => Number(match[1]));
        const exitCode = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        const after = existsSync(tokenFile) ? readFileSync(tokenFile, 'utf8') : token;
        resolve({ exitCode, statuses, stdout, stderr, token: after });
      },
    );
  });
}

const readme = readFileSync(README, 'utf8');
const blocks = extractCurlExamples(readme);

describe('the README curl convention', () => {
  it('finds annotated curl examples, the seed guide among them', () => {
    expect(blocks.length).toBeGreaterThan(0);
    const commands = blocks.flatMap((block) => block.examples.map((example) => example.command));
    if (existsSync(SEED_DIR)) {
      const seedCommands = readdirSync(SEED_DIR)
        .filter((file) => file.endsWith('.md'))
        .flatMap((file) => readFileSync(new URL(file, SEED_DIR), 'utf8').split('\n'))
        .map((line) => line.trim())
        .filter((line) => line.startsWith('curl '));
      expect(seedCommands.length).toBeGreaterThan(0);
      for (const seedCommand of seedCommands) expect(commands, 'the seed guide\'s curl lines stay in the README verbatim').toContain(seedCommand);
    }
  });

  it('refuses a curl line without a status, a stray status and curl outside a bash block', () => {
    expect(() => extractCurlExamples('```bash\ncurl http://localhost:5000/status\n```\n')).toThrow(/without `# → <status>`/);
    expect(() => extractCurlExamples('```bash\ncurl http://localhost:5000/status\n# → 200\n# → 200\n```\n')).toThrow(/follows no curl/);
    expect(() => extractCurlExamples('```\ncurl http://localhost:5000/status\n```\n')).toThrow(/make it ```bash/);
    expect(() => extractCurlExamples('```bash\nnpm start\ncurl http://localhost:5000/status\n# → 200\n```\n')).toThrow(/not a curl command/);
    expect(() => extractCurlExamples('Run\ncurl http://localhost:5000/status\n')).toThrow(/outside a code block/);
    const [block] = extractCurlExamples(
      '```bash\n# Status\ncurl -X POST http://localhost:5000/x \\\n  -H "A: b"\n# → 201 (comment)\nTOKEN=$(curl -s http://localhost:5000/y | cat)\n#→ 200\n```\n',
    );
    expect(block?.examples).toEqual([
      { line: 3, command: 'curl -X POST http://localhost:5000/x \\\n  -H "A: b"', expected: 201 },
      { line: 6, command: 'TOKEN=$(curl -s http://localhost:5000/y | cat)', expected: 200 },
    ]);
  });
});

describe(`README.md curl examples against a listening server (${testDb})`, () => {
  let app: FastifyInstance | undefined;
  let scratch: ScratchDatabase | undefined;
  let baseUrl = '';
  let workDir = '';

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    app = await createServer(testConfig(scratch.url, SERVER_ENV), { logger: false });
    await app.listen({ port: 0, host: '127.0.0.1' });
    baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    workDir = mkdtempSync(join(tmpdir(), 'usine-readme-'));
  });
  afterAll(async () => {
    await app?.close();
    await scratch?.drop();
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });

  for (const block of blocks) {
    it(`runs the block at README.md:${block.line} (${block.examples.length} curl examples) in order`, async () => {
      const session = await login(baseUrl);
      for (const example of block.examples) {
        expect(example.command, `README.md:${example.line} must call ${README_BASE_URL}`).toContain(README_BASE_URL);
        let script = example.command
          .replaceAll(README_BASE_URL, baseUrl)
          .replaceAll('<token>', session.token)
          .replaceAll('<refresh_token>', session.refreshToken);
        const placeholder = /<[a-z_]+>/.exec(script);
        expect(placeholder, `README.md:${example.line}: unknown placeholder ${placeholder?.[0]}`).toBeNull();
        script = script.trim();
        const filesBefore = new Set(readdirSync(workDir));
        const outcome = await runExample(script, workDir, session.token);
        const where = `README.md:${example.line}\n${example.command}\n--- stdout\n${outcome.stdout.slice(0, 2000)}\n--- stderr\n${outcome.stderr.slice(0, 2000)}`;
        expect(outcome.exitCode, where).toBe(0);
        expect(outcome.statuses, where).toEqual([example.expected]);

        // What the example printed carries on: a login's or a refresh's tokens, a TOKEN=$(…) assignment.
        try {
          const answer = JSON.parse(outcome.stdout) as { access_token?: unknown; refresh_token?: unknown };
          if (typeof answer.access_token === 'string') session.token = answer.access_token;
          if (typeof answer.refresh_token === 'string') session.refreshToken = answer.refresh_token;
        } catch {
          // not JSON: nothing to carry
        }
        if (outcome.token !== session.token) {
          expect(outcome.token, `${where}\nTOKEN= must hold an access token`).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
          session.token = outcome.token;
        }

        // A live log stream ends by itself with the `end` event; a download writes its file.
        if (/text\/event-stream/.test(example.command) && example.expected === 200) {
          expect(outcome.stdout, where).toMatch(/^event: end\nid: \d+\ndata: \{"status":"(success|fail|canceled)"\}$/m);
        }
        if (/\s-[a-zA-Z]*O/.test(example.command) && example.expected === 200) {
          const written = readdirSync(workDir).filter((name) => !filesBefore.has(name) && !name.startsWith('.'));
          expect(written, where).toHaveLength(1);
          expect(statSync(join(workDir, written[0] ?? '')).size, where).toBeGreaterThan(0);
        }
      }
    });
  }
});
