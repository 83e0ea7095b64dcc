#!/usr/bin/env bash
# Stand-ins for the two base images the Dockerfile names, for machines that can't reach Docker Hub,
# idempotent: an image already present under that name (stand-in or real) is kept.
# - debian:sid-slim: a minbase sid root (debian-sid.sh) slimmed as Debian's official slim images
#   are (the same dpkg path excludes, applied to what is installed, and apt's docker-clean), imported
#   with `docker import`.
# - node:24-trixie-slim: that plus Node 24 and npm 11 from the npm registry, laid out under
#   /usr/local as the official node image lays them out.
# This machine may reach the registry through a TLS proxy whose CA only its own bundle has; the node
# stand-in trusts that bundle (NODE_EXTRA_CA_CERTS), or `npm ci` in the build fails.
set -euo pipefail
cd "$(dirname "$0")"
log() { printf 'docker-bases: %s\n' "$*" >&2; }
have() { docker image inspect "$1" >/dev/null 2>&1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if have debian:sid-slim; then
  log "reusing debian:sid-slim"
else
  . ./debian-sid.sh
  log "debian:sid-slim: debootstrap sid"
  sid_debootstrap "$work/root" ""
  cat >"$work/root/etc/dpkg/dpkg.cfg.d/docker" <<'SLIM'
# The "slim" variant, as Debian's official images make it: files containers don't use stay out.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
SLIM
  # As in Debian's images: apt keeps no downloaded .debs, so an `apt-get install` layer holds no cache.
  cat >"$work/root/etc/apt/apt.conf.d/docker-clean" <<'CLEAN'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CLEAN
  (cd "$work/root" &&
    find usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete &&
    rm -rf usr/share/groff/* usr/share/info/* usr/share/linda/* usr/share/lintian/overrides/* \
      usr/share/locale/* usr/share/man/* var/cache/apt/*.bin var/lib/apt/lists/*)
  tar -C "$work/root" -c . | docker import \
    -c 'CMD ["bash"]' -c 'LABEL org.privatedial.stand-in="debootstrap --variant=minbase sid"' - debian:sid-slim >/dev/null
  rm -rf "$work/root"
  log "debian:sid-slim made ($(docker image inspect -f '{{.Size}}' debian:sid-slim) bytes)"
fi

if have node:24-trixie-slim; then
  log "reusing node:24-trixie-slim"
else
  case $(dpkg --print-architecture) in
  amd64) arch=x64 ;;
  arm64) arch=arm64 ;;
  *) log "no Node build on npm for $(dpkg --print-architecture)"; exit 2 ;;
  esac
  log "node:24-trixie-slim: node-linux-$arch@24 and npm@11 from the npm registry"
  (cd "$work" && npm pack --silent "node-linux-$arch@24" "npm@11" >/dev/null)
  mkdir -p "$work/node" "$work/npm"
  tar -xzf "$work"/node-linux-"$arch"-*.tgz -C "$work/node" --strip-components=1
  tar -xzf "$work"/npm-*.tgz -C "$work/npm" --strip-components=1
  cp /etc/ssl/certs/ca-certificates.crt "$work/host-ca.crt"
  cat >"$work/Dockerfile" <<'NODE'
FROM debian:sid-slim
COPY node/bin/node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
COPY host-ca.crt /usr/local/share/ca-certificates/privatedial-host-bundle.crt
ENV NODE_EXTRA_CA_CERTS=/usr/local/share/ca-certificates/privatedial-host-bundle.crt
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm && \
    ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx && \
    node --version && npm --version
LABEL org.privatedial.stand-in="node and npm from the npm registry"
CMD ["node"]
NODE
  docker build -q -t node:24-trixie-slim "$work" >/dev/null
  log "node:24-trixie-slim made ($(docker run --rm node:24-trixie-slim node --version))"
fi
