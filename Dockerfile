# syntax=docker/dockerfile:1
# One image for every NEXO ROUTE process; the command picks which (docker-compose.yml):
#   api             node dist/apps/api/src/main.js   (default)
#   worker          node dist/apps/worker/src/main.js
#   chain-listener  node dist/apps/chain-listener/src/main.js
# Each serves GET /metrics, /health/live and /health/ready on $PORT.

ARG NODE_IMAGE=node:20-bookworm-slim
# The npm that wrote package-lock.json. npm 11 honours package.json's `allowScripts`: only the
# packages listed there (better-sqlite3, protobufjs) run install scripts.
ARG NPM_VERSION=11.19.1

# ---- build: all dependencies, TypeScript compiled to dist/
FROM ${NODE_IMAGE} AS build
ARG NPM_VERSION
# better-sqlite3 compiles its native addon with node-gyp when no prebuilt binary matches.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/* \
 && npm install -g "npm@${NPM_VERSION}" --no-audit --no-fund
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json nest-cli.json ./
COPY apps ./apps
COPY libs ./libs
COPY bench ./bench
RUN npm run build

# ---- prod-deps: runtime dependencies only, native addons built for this same base image
FROM ${NODE_IMAGE} AS prod-deps
ARG NPM_VERSION
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/* \
 && npm install -g "npm@${NPM_VERSION}" --no-audit --no-fund
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# ---- runtime: no compiler, no dev dependencies, not root
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    PORT=3000 \
    HOST=0.0.0.0 \
    NEXO_DATA_DIR=/var/lib/nexo
WORKDIR /app
# package.json carries the `imports` map (#domain → dist/libs/domain/...), so it sits beside dist/.
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist/apps ./dist/apps
COPY --from=build /app/dist/libs ./dist/libs
COPY package.json ./
# The image's `node` user (uid 1000), numeric so orchestrators can verify runAsNonRoot. It owns
# only the data directory (per-instance read models, rebuildable from the event store); the
# code stays root-owned and read-only to it.
RUN mkdir -p "$NEXO_DATA_DIR" && chown 1000:1000 "$NEXO_DATA_DIR"
USER 1000:1000
EXPOSE 3000
# No curl in the slim image: Node's own fetch probes the liveness endpoint.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/health/live').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# The same as `npm start`: two malloc arenas (glibc would keep one per thread, each holding freed
# memory) and the main thread's heap bounded at 160 MB (its live set is ~100 MB; see the README).
ENV MALLOC_ARENA_MAX=2
CMD ["node", "--max-old-space-size=160", "dist/apps/api/src/main.js"]
