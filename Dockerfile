# PrivateDial: Asterisk 22 LTS from Debian (sid is where Debian carries Asterisk; the tests run on
# the same package through scripts/asterisk-root.sh), Node 24 for the init tool, tini as PID 1.
# No `# syntax=` line: the builder's own Dockerfile frontend reads this file, with no image to pull.
# Pin the bases by digest for reproducible builds: --build-arg DEBIAN=debian:sid-slim@sha256:...
ARG NODE=node:24-trixie-slim
ARG DEBIAN=debian:sid-slim

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
# Asterisk loads only the modules modules.conf names (autoload = no); the build checks they all
# find their libraries after the trimming below.
COPY rootfs/etc/asterisk/modules.conf /tmp/modules.conf
# Asterisk drops root to this user and reads the config as it. A fixed id (the package would take
# whatever is free) lets a host give it a bind-mounted file: chgrp 5060, chmod 640 (README).
# Size: documentation, man pages and translations never reach the disk (dpkg path excludes, as
# Debian's slim images set them); Node is Debian's nodejs, which shares ICU with Asterisk's
# libraries instead of carrying its own. Debian's asterisk-modules package links every module
# Asterisk has; the libraries that only modules we never load pull in (net-snmp and with it perl,
# codec2) and GnuPG (a dependency of a mail library's signature support we don't use) are removed
# with their modules, and the build fails if a module we load lost a library. (An image built
# FROM this one that installs packages is first told to run `apt-get -f install`, which puts them back.)
RUN set -eux; \
    printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
      'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' 'path-exclude /usr/share/locale/*' \
      'path-exclude /usr/share/lintian/*' >/etc/dpkg/dpkg.cfg.d/privatedial-slim; \
    groupadd --system --gid 5060 asterisk; \
    useradd --system --uid 5060 --gid 5060 --home-dir /var/lib/asterisk --no-create-home --shell /usr/sbin/nologin asterisk; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      asterisk asterisk-modules asterisk-core-sounds-en-gsm nodejs tini ca-certificates tzdata nftables; \
    unused=$(dpkg-query -W -f '${db:Status-Abbrev} ${Package}\n' 'libsnmp*' 'libperl5.*' 'perl-modules-5.*' \
      'libcodec2-*' 'gnupg*' 'gpg*' dirmngr keyboxd 'pinentry*' 2>/dev/null | awk '/^ii/ {print $2}'); \
    DEBIAN_FRONTEND=noninteractive dpkg --purge --force-depends $unused; \
    modules=$(dirname /usr/lib/*/asterisk/modules/app_dial.so); \
    for m in "$modules"/*.so; do \
      if ldd "$m" | grep -q 'not found'; then rm "$m"; fi; \
    done; \
    for m in $(sed -n 's/^load => //p' /tmp/modules.conf); do \
      if ! test -e "$modules/$m" || ldd "$modules/$m" | grep 'not found'; then echo "modules.conf loads $m: missing" >&2; exit 1; fi; \
    done; \
    rm -rf /var/lib/apt/lists/* /etc/asterisk/* /tmp/modules.conf; \
    asterisk -V; node --version
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
# Probes every second until the first success (Docker 25+), then every 30 s: "healthy" follows
# ready within a second or two, and `depends_on: condition: service_healthy` doesn't wait 30 s.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --start-interval=1s --retries=3 CMD ["privatedial", "health"]
# run drains calls for STOP_GRACE_SECONDS (8) on SIGTERM; give it that and a margin.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["privatedial", "run"]
