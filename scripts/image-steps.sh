#!/usr/bin/env bash
# Proves the Dockerfile's steps without a Docker engine.
#
#  1. build context: the repository's files (tracked and untracked-but-not-ignored, so uncommitted work counts)
#     minus what .dockerignore excludes; each Dockerfile `COPY <src> <dest>` of the build stage is replayed
#     from that context into a clean "build" directory;
#  2. the build stage's commands: npm ci, npm run build, npm prune --omit=dev;
#  3. the runtime stage: only what its COPY lines bring (package.json, node_modules, dist from the build
#     stage; drizzle/ from the context) into a second, clean "image" directory;
#  4. the image's CMD (read from the Dockerfile, run as is: no shell) with the image's ENV on SQLite, then on
#     a scratch PostgreSQL database; each time: the health endpoint answers 200, the Dockerfile's own
#     HEALTHCHECK command exits 0, every migration is applied, the admin can log in, and SIGTERM ends the
#     process with exit code 0.
#
# Every step runs on the image's Node (the Dockerfile's `FROM node:<major>`, from scripts/image-node.sh), so npm ci
# builds the native modules for the ABI the image runs.
#
# Prints PASS or FAIL last; exits non-zero on failure. PostgreSQL: PGHOST/PGPORT/PGUSER (127.0.0.1:5432 postgres).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DOCKERFILE="$ROOT/Dockerfile"
IMAGE_NODE="$(bash "$ROOT/scripts/image-node.sh")"
export PATH="$IMAGE_NODE/bin:$PATH" npm_config_nodedir="$IMAGE_NODE"
PGHOST="${PGHOST:-127.0.0.1}"
PGPORT="${PGPORT:-5432}"
PGUSER="${PGUSER:-postgres}"
export PGHOST PGPORT PGUSER

WORK="$(mktemp -d "${TMPDIR:-/tmp}/usine-image.XXXXXX")"
CONTEXT="$WORK/context"
BUILD="$WORK/build"
IMAGE="$WORK/image"
SERVER_PID=
PG_DB=

log() { printf '\n==> %s\n' "$*"; }
fail() { printf '\nimage-steps: FAIL: %s\n' "$*" >&2; exit 1; }

cleanup() {
  local rc=$?
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then kill -KILL "$SERVER_PID" 2>/dev/null || true; fi
  if [ -n "$PG_DB" ]; then psql -qX -d postgres -c "drop database if exists \"$PG_DB\" with (force)" >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
  if [ "$rc" -eq 0 ]; then echo "image-steps: PASS"; else echo "image-steps: FAIL (exit $rc)"; fi
  exit "$rc"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------------------
# Reads the Dockerfile: per stage, its COPY lines (one `src… dest` per line, `--from=` kept), its ENV, CMD
# and HEALTHCHECK CMD (exec-form JSON arrays). Line continuations are joined first.
dockerfile_json() {
  node - "$DOCKERFILE" <<'NODE'
const fs = require('node:fs');
const text = fs.readFileSync(process.argv[2], 'utf8').replace(/\\\r?\n/g, ' ');
const stages = [];
for (const raw of text.split(/\r?\n/)) {
  const line = raw.trim();
  if (line === '' || line.startsWith('#')) continue;
  const [, instruction, rest] = /^(\w+)\s+(.*)$/.exec(line) ?? [];
  if (!instruction) continue;
  const op = instruction.toUpperCase();
  if (op === 'FROM') { stages.push({ from: rest, copies: [], env: {}, runs: [] }); continue; }
  const stage = stages.at(-1);
  if (!stage) continue;
  if (op === 'COPY') {
    const words = rest.split(/\s+/);
    const from = words.find((w) => w.startsWith('--from='))?.slice(7) ?? null;
    const args = words.filter((w) => !w.startsWith('--'));
    stage.copies.push({ from, sources: args.slice(0, -1), dest: args.at(-1) });
  } else if (op === 'ENV') {
    for (const m of rest.matchAll(/(\w+)=("[^"]*"|\S+)/g)) stage.env[m[1]] = m[2].replace(/^"|"$/g, '');
  } else if (op === 'RUN') {
    stage.runs.push(rest);
  } else if (op === 'CMD') {
    stage.cmd = JSON.parse(rest);
  } else if (op === 'HEALTHCHECK') {
    const at = rest.indexOf('CMD ');
    stage.healthcheck = JSON.parse(rest.slice(at + 4).trim());
  } else if (op === 'USER') {
    stage.user = rest;
  } else if (op === 'WORKDIR') {
    stage.workdir = rest;
  }
}
process.stdout.write(JSON.stringify(stages));
NODE
}

DF_JSON="$(dockerfile_json)"
df() { node -e 'const s = JSON.parse(process.argv[1]); const f = new Function("stages", "return (" + process.argv[2] + ")"); const v = f(s); process.stdout.write(typeof v === "string" ? v : JSON.stringify(v));' "$DF_JSON" "$1"; }

[ "$(df 'stages.length')" = "2" ] || fail "expected a two-stage Dockerfile (build, runtime)"
[ "$(df 'stages[1].env.NODE_ENV')" = "production" ] || fail "the runtime stage does not set NODE_ENV=production"
[ "$(df 'stages[1].user')" = "node" ] || fail "the runtime stage does not run as USER node"
for step in 'npm ci' 'npm run build' 'npm prune --omit=dev'; do
  df 'stages[0].runs.join("\n")' | grep -qF -- "$step" || fail "the build stage no longer runs '$step': update this script"
done
mapfile -t CMD < <(df 'stages[1].cmd.join("\n")')
mapfile -t HEALTHCHECK < <(df 'stages[1].healthcheck.join("\n")')
[ "${#CMD[@]}" -gt 0 ] || fail "no exec-form CMD in the runtime stage"
[ "${CMD[0]}" = "node" ] || fail "CMD must start node itself (no shell wrapper): ${CMD[*]}"
[ "${#HEALTHCHECK[@]}" -gt 0 ] || fail "no exec-form HEALTHCHECK CMD in the runtime stage"

# ---------------------------------------------------------------------------------------------------------
log "build context: git ls-files -co --exclude-standard, minus .dockerignore"
mkdir -p "$CONTEXT" "$BUILD" "$IMAGE"
(
  cd "$ROOT"
  git ls-files -co --exclude-standard -z |
    node -e '
      // .dockerignore: one pattern per line, `!` re-includes, last match wins; a directory pattern
      // excludes everything under it. Enough of the syntax for this repository'"'"'s file.
      const fs = require("node:fs");
      const rules = fs.readFileSync(".dockerignore", "utf8").split(/\r?\n/).map((l) => l.trim())
        .filter((l) => l && !l.startsWith("#")).map((l) => {
          const negate = l.startsWith("!");
          const pattern = (negate ? l.slice(1) : l).replace(/^\/+|\/+$/g, "");
          const re = pattern.split("*").map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join("[^/]*");
          return { negate, re: new RegExp(`^${re}(?:/.*)?$`) };
        });
      const files = fs.readFileSync(0, "utf8").split("\0").filter(Boolean);
      for (const file of files) {
        let excluded = false;
        for (const rule of rules) if (rule.re.test(file)) excluded = !rule.negate;
        if (!excluded && fs.existsSync(file)) process.stdout.write(file + "\0");
      }' |
    xargs -0 cp --parents -t "$CONTEXT"
)
echo "$(find "$CONTEXT" -type f | wc -l) files in the context"
for forbidden in node_modules dist data .git .env; do
  [ ! -e "$CONTEXT/$forbidden" ] || fail "$forbidden reached the build context despite .dockerignore"
done

# Replays one stage's COPY lines: from the context, or (--from=build) from the build stage's /app.
replay_copies() {
  local stage=$1 target=$2 count i j from dest src n
  count="$(df "stages[$stage].copies.length")"
  for ((i = 0; i < count; i++)); do
    from="$(df "stages[$stage].copies[$i].from ?? ''")"
    dest="$(df "stages[$stage].copies[$i].dest")"
    n="$(df "stages[$stage].copies[$i].sources.length")"
    for ((j = 0; j < n; j++)); do
      src="$(df "stages[$stage].copies[$i].sources[$j]")"
      local origin="$CONTEXT/$src"
      if [ -n "$from" ]; then origin="$BUILD/${src#/app/}"; fi
      [ -e "$origin" ] || fail "COPY source missing: ${from:+--from=$from }$src"
      if [ "$n" -gt 1 ] || [[ "$dest" == */ ]]; then
        mkdir -p "$target/$dest"
        cp -a "$origin" "$target/$dest/"
      else
        mkdir -p "$(dirname "$target/$dest")"
        cp -a "$origin" "$target/$dest"
      fi
      echo "COPY ${from:+--from=$from }$src -> $dest"
    done
  done
}

log "build stage on node $(node -v): COPY, npm ci, npm run build, npm prune --omit=dev"
replay_copies 0 "$BUILD"
(
  cd "$BUILD"
  npm ci --no-audit --no-fund --prefer-offline
  npm run build
  npm prune --omit=dev --no-audit --no-fund
) || fail "the build stage failed"
[ ! -e "$BUILD/node_modules/typescript" ] || fail "dev dependencies survived npm prune"

log "runtime stage: only what its COPY lines bring"
replay_copies 1 "$IMAGE"
mkdir -p "$IMAGE/data"
echo "image contents: $(cd "$IMAGE" && ls -A | tr '\n' ' ')"
[ -z "$(cd "$IMAGE" && ls -A | grep -vxE 'package.json|node_modules|dist|drizzle|data')" ] ||
  fail "unexpected files in the image"

# ---------------------------------------------------------------------------------------------------------
free_port() { node -e 'const s = require("node:net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'; }

HEALTH_PATH=/status
if [ -f "$IMAGE/dist/routes/health/index.js" ]; then HEALTH_PATH=/health/ready; fi
ADMIN_PASSWORD="image-check-$(node -e 'console.log(require("node:crypto").randomBytes(9).toString("hex"))')"
JWT_SECRET="$(node -e 'console.log(require("node:crypto").randomBytes(32).toString("hex"))')"

# Runs the image's CMD with its ENV (HOST narrowed to loopback, a free PORT, the given DATABASE_URL), then checks
# health, the HEALTHCHECK command, the migrations (via $3, a command printing the applied count) and SIGTERM.
run_image() {
  local label=$1 database_url=$2 applied_cmd=$3 expected=$4
  local port logfile="$WORK/$label.log"
  port="$(free_port)"
  log "$label: ${CMD[*]} (PORT=$port, DATABASE_URL=${database_url%%:*}:…)"
  (
    cd "$IMAGE"
    # Only the image's environment: nothing from this shell (no .env either: the copy has none).
    exec env -i PATH="$PATH" HOME="$WORK" \
      NODE_ENV=production PORT="$port" HOST=127.0.0.1 DATABASE_URL="$database_url" \
      JWT_SECRET="$JWT_SECRET" ADMIN_PASSWORD="$ADMIN_PASSWORD" LOG_LEVEL=info \
      "${CMD[@]}"
  ) >"$logfile" 2>&1 &
  SERVER_PID=$!

  local code=000
  for _ in $(seq 1 120); do
    code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port$HEALTH_PATH" || true)"
    [ "$code" = "200" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.25
  done
  if [ "$code" != "200" ]; then
    tail -n 30 "$logfile" >&2
    fail "$label: GET $HEALTH_PATH answered $code"
  fi
  echo "GET $HEALTH_PATH -> 200: $(curl -s "http://127.0.0.1:$port$HEALTH_PATH")"
  if [ "$HEALTH_PATH" = /health/ready ]; then
    code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health/live" || true)"
    [ "$code" = "200" ] || fail "$label: GET /health/live answered $code"
    echo "GET /health/live -> 200"
  fi

  (cd "$IMAGE" && env -i PATH="$PATH" PORT="$port" "${HEALTHCHECK[@]}") || fail "$label: the Dockerfile HEALTHCHECK command failed"
  echo "HEALTHCHECK command -> exit 0"

  # A 503 asks the client to come back (a process just started may still be warming up on a busy machine): retried a
  # few times, as a client would. Anything else, or a 503 that lasts, fails with the answer and the server's log.
  local login attempt body="$WORK/login.json"
  for attempt in 1 2 3 4 5; do
    login="$(curl -s -o "$body" -w '%{http_code}' -H 'content-type: application/json' \
      -d "{\"username\":\"admin\",\"password\":\"$ADMIN_PASSWORD\"}" "http://127.0.0.1:$port/login")"
    [ "$login" = "503" ] || break
    echo "POST /login answered 503 (attempt $attempt): $(head -c 300 "$body")"
    sleep 1
  done
  if [ "$login" != "200" ]; then
    head -c 500 "$body" >&2
    tail -n 30 "$logfile" >&2
    fail "$label: POST /login as admin answered $login"
  fi
  echo "POST /login (admin, ADMIN_PASSWORD) -> 200"

  local applied
  applied="$(eval "$applied_cmd")"
  [ "$applied" = "$expected" ] || fail "$label: $applied of $expected migrations applied"
  echo "migrations applied: $applied/$expected"

  kill -TERM "$SERVER_PID"
  local rc=0
  wait "$SERVER_PID" || rc=$?
  SERVER_PID=
  if [ "$rc" -ne 0 ]; then
    tail -n 30 "$logfile" >&2
    fail "$label: exit code $rc after SIGTERM (expected 0)"
  fi
  echo "SIGTERM -> exit 0"
}

journal_count() { node -e 'console.log(require(process.argv[1]).entries.length)' "$IMAGE/drizzle/$1/meta/_journal.json"; }

SQLITE_FILE="$IMAGE/data/usine.db"
run_image sqlite "sqlite:$SQLITE_FILE" \
  "cd '$IMAGE' && node -e 'const D = require(\"better-sqlite3\"); const db = new D(process.argv[1], { readonly: true }); console.log(db.prepare(\"select count(*) as n from __drizzle_migrations\").get().n)' '$SQLITE_FILE'" \
  "$(journal_count sqlite)"

log "PostgreSQL at $PGHOST:$PGPORT"
pg_isready -q || fail "PostgreSQL does not answer on $PGHOST:$PGPORT"
PG_DB="usine_image_$(node -e 'console.log(require("node:crypto").randomBytes(5).toString("hex"))')"
psql -qX -d postgres -c "create database \"$PG_DB\"" || fail "could not create database $PG_DB"
run_image pg "postgres://$PGUSER@$PGHOST:$PGPORT/$PG_DB" \
  "psql -qtAX -d '$PG_DB' -c 'select count(*) from drizzle.__drizzle_migrations'" \
  "$(journal_count pg)"
