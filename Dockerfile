# The realtime relay's container, for Cloud Run (docs/DEPLOY.md). Build from the repository root, so that
# the workspace's package-lock.json is in the context:
#   gcloud builds submit --tag us-central1-docker.pkg.dev/PROJECT/relay/relay:TAG .
#
# Every dependency comes from package-lock.json through `npm ci`: the image runs the versions the tests
# ran. --ignore-scripts: nothing the relay runs needs an install script (@firebase/util and protobufjs
# have optional ones), and it keeps native builds of dev tools (re2, via firebase-tools) out of the build.
# Every workspace listed in the root package.json (functions, client) has its package.json copied below,
# so that npm ci sees the workspace the lockfile describes.

# Compiles functions/src. The TypeScript compiler is a devDependency of the root, so this stage installs
# the whole workspace; none of it reaches the image.
FROM node:22-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY functions/package.json functions/
COPY client/package.json client/
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY functions/tsconfig.json functions/
COPY functions/src functions/src
RUN npm run build --workspace functions

# Only what functions/ needs at run time (no firebase-tools, vitest or typescript), laid out as the
# lockfile says: hoisted into node_modules/, and in functions/node_modules/ where versions differ.
FROM node:22-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY functions/package.json functions/
COPY client/package.json client/
RUN npm ci --workspace functions --include-workspace-root=false --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:22-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app ./
COPY --from=build /app/functions/lib ./functions/lib
USER node
EXPOSE 8080
# Cloud Run sets PORT; config comes from the environment and JWT_SECRET from Secret Manager.
CMD ["node", "functions/lib/relay/standalone.js"]
