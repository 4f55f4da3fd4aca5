# The realtime relay's container, for Cloud Run (see docs/DEPLOY.md). Build from the repository root:
#   gcloud builds submit --tag REGION-docker.pkg.dev/PROJECT/relay/relay .
FROM node:22-slim AS build
WORKDIR /app
COPY functions/package.json functions/tsconfig.json ./
RUN npm install --no-audit --no-fund
COPY functions/src ./src
RUN npm run build && npm prune --omit=dev

FROM node:22-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/lib ./lib
USER node
EXPOSE 8080
CMD ["node", "lib/relay/standalone.js"]
