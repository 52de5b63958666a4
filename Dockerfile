# syntax=docker/dockerfile:1

# Usine — CI/CD REST API (Fastify 5, TypeScript, SQLite or PostgreSQL).
#
# With NODE_ENV=production (set below) the service REFUSES TO START unless
#   JWT_SECRET      is set to a secret of at least 32 bytes, and
#   ADMIN_PASSWORD  is set to something other than the seed's default (admin123).
# Example:
#   docker build -t usine .
#   docker run --rm -p 5000:5000 -v usine-data:/app/data \
#     -e JWT_SECRET="$(openssl rand -hex 32)" -e ADMIN_PASSWORD='a-strong-password' usine

########## build stage: install everything, compile TypeScript, drop dev dependencies ##########
# Node 26, the newest LTS, which every dependency declares support for (better-sqlite3 12.11: 20.x-26.x). Both stages
# use the same major: .ci/run and scripts/image-steps.sh read it here and run the whole suite on that Node
# (scripts/image-node.sh fetches it from the npm registry).
FROM node:26-bookworm-slim AS build
WORKDIR /app

# argon2 and better-sqlite3 ship prebuilt binaries for linux x64/arm64 (glibc); the toolchain is only
# a fallback for when no prebuild matches. It stays in this stage and never reaches the final image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*

COPY package.json package-lock.json ./
# npm ci's postinstall guards a postgres.js function (see the script)
COPY scripts/patch-postgres.mjs ./scripts/patch-postgres.mjs
RUN npm ci --no-audit --no-fund

COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY plugins ./plugins
COPY routes ./routes
# tsc -p tsconfig.build.json: src/, plugins/ and routes/ -> dist/src, dist/plugins, dist/routes
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund \
 && npm cache clean --force

########## runtime stage ##########
FROM node:26-bookworm-slim
WORKDIR /app

# MALLOC_ARENA_MAX=1: one malloc arena, so that the 7 MiB each argon2 hash allocates is reused by the next hash on
# any thread instead of staying resident in one arena per thread-pool thread (BENCHMARKS.md, Findings).
ENV NODE_ENV=production \
    PORT=5000 \
    HOST=0.0.0.0 \
    DATABASE_URL=sqlite:/app/data/usine.db \
    MALLOC_ARENA_MAX=1

# package.json marks the project root: the app reads its version there and finds drizzle/{sqlite,pg}
# (migrations, applied at start-up) next to it. Code stays owned by root, read-only to the `node` user.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY drizzle ./drizzle

# The SQLite database lives here by default (mount a volume on /app/data to keep it across containers).
RUN mkdir -p /app/data && chown node:node /app/data

USER node
EXPOSE 5000

# No curl in the slim image: Node's own fetch does the probe. /health/ready is 200 when the database answers,
# the migrations are applied and the process is not shutting down (Kubernetes uses it and /health/live instead).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 5000) + '/health/ready').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# Exec form, no shell in between: node itself receives SIGTERM from `docker stop` and shuts down
# gracefully (close-with-grace: stops accepting connections, finishes in-flight requests, closes the DB).
# V8: a 2 x 2 MiB young generation, and the old one collected once it grows 20 % past the live data (no hard limit):
# the same flags as package.json's `start` and the benchmark (bench/servers.ts).
CMD ["node", "--max-semi-space-size=2", "--heap-growing-percent=20", "dist/src/main.js"]
