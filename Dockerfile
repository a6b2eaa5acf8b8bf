# syntax=docker/dockerfile:1
# The image of couchlog's own services in docker-compose.yml (setup,
# ingress, correlator): TypeScript compiled in a build stage, then a small
# runtime with the production dependencies only, run as a non-root user.
#   docker build -t couchlog .
#   docker run --rm couchlog --help

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: "prepare" would compile before the sources are copied,
# and no native module is needed (the embedded PouchDB Server is not used
# in containers; CouchDB is its own service).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY lib ./lib
COPY design-docs ./design-docs
COPY setup ./setup
COPY server ./server
COPY correlator ./correlator
COPY shipper ./shipper
COPY forward ./forward
COPY embedded ./embedded
COPY cli ./cli
COPY bench ./bench
COPY scripts ./scripts
COPY test ./test
RUN npx tsc -p . \
 && rm -rf dist/test \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    COUCHLOG_DATA=/var/lib/couchlog
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# data_dir (dead-letter files, the correlator's file sink): a fresh named
# volume mounted here takes this owner.
RUN mkdir -p /var/lib/couchlog /etc/couchlog && chown node:node /var/lib/couchlog
# "node" (uid 1000) comes with the base image.
USER node
EXPOSE 8080 8081
ENTRYPOINT ["node", "dist/scripts/couchlog.js"]
CMD ["--help"]
