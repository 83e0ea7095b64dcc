# syntax=docker/dockerfile:1
# PrivateDial: Asterisk 22 LTS from Debian (sid is where Debian carries Asterisk; the tests run on
# the same package through scripts/asterisk-root.sh), Node 24 for the init tool, tini as PID 1.
# Pin the bases by digest for reproducible builds: --build-arg DEBIAN=debian:sid-slim@sha256:...
ARG NODE=node:24-trixie-slim
ARG DEBIAN=debian:sid-slim

FROM ${NODE} AS node

# src/ compiled to JavaScript: the resident run then carries no TypeScript stripper.
FROM ${NODE} AS build
WORKDIR /opt/privatedial
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
RUN npm ci --no-audit --no-fund
COPY src ./src
RUN npm run build

# Production dependencies only; nothing of npm stays in the final image.
FROM ${NODE} AS deps
WORKDIR /opt/privatedial
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM ${DEBIAN}
# Asterisk drops root to this user and reads the config as it. A fixed id (the package would take
# whatever is free) lets a host give it a bind-mounted file: chgrp 5060, chmod 640 (README).
RUN set -eux; \
    groupadd --system --gid 5060 asterisk; \
    useradd --system --uid 5060 --gid 5060 --home-dir /var/lib/asterisk --no-create-home --shell /usr/sbin/nologin asterisk; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      asterisk asterisk-modules asterisk-core-sounds-en-gsm tini ca-certificates tzdata nftables; \
    rm -rf /var/lib/apt/lists/* /etc/asterisk/*; \
    asterisk -V
COPY --from=node /usr/local/bin/node /usr/local/bin/node
WORKDIR /opt/privatedial
COPY --from=deps /opt/privatedial/node_modules ./node_modules
COPY package.json ./
COPY --from=build /opt/privatedial/dist ./dist
COPY rootfs ./rootfs
# Everything that must survive the container lives under /srv, the one volume; the usual paths
# point there so the spec's file names (/etc/asterisk/..., /etc/ssl/asterisk/...) keep working.
RUN set -eux; \
    chmod 755 dist/cli.js dist/mail/minivm-send-cli.js; \
    ln -s /opt/privatedial/dist/cli.js /usr/local/bin/privatedial; \
    ln -s /opt/privatedial/dist/mail/minivm-send-cli.js /usr/local/bin/minivm-send; \
    for d in /etc/asterisk /etc/ssl/asterisk /var/spool/asterisk /var/log/asterisk /var/lib/asterisk/db; do \
      rm -rf "$d"; mkdir -p "/srv$d" "$(dirname "$d")"; ln -s "/srv$d" "$d"; \
    done; \
    chown -R asterisk:asterisk /srv/var; \
    privatedial --version
ENV ASTERISK_CONF_DIR=/etc/asterisk \
    LOG_LEVEL=info \
    TZ=UTC
VOLUME /srv
# SIP UDP/TCP, SIP TLS, RTP (keep in step with RTP_PORT_MIN/MAX), WebSMS, ACME HTTP-01.
EXPOSE 5060/udp 5060/tcp 5061/tcp 10000-10099/udp 8080/tcp 80/tcp
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["privatedial", "health"]
# run drains calls for STOP_GRACE_SECONDS (8) on SIGTERM; give it that and a margin.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["privatedial", "run"]
