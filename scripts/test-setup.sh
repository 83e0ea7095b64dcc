#!/usr/bin/env bash
# Everything the tests need on a fresh Debian machine, idempotent: Debian's pebble (ACME test CA),
# sip-tester (sipp), debootstrap, openssl and nftables (the ban tests run nft in network
# namespaces they make); the npm dependencies (Node 24 among them); the Debian sid root with a
# real Asterisk (scripts/asterisk-root.sh), which `npm test` then finds; and for the image tests a
# Docker engine with compose v2 (scripts/docker-engine.sh) and the base images the Dockerfile
# names (scripts/docker-bases.sh makes stand-ins where Docker Hub is out of reach).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for cmd in pebble:pebble sipp:sip-tester debootstrap:debootstrap openssl:openssl nft:nftables; do
  command -v "${cmd%%:*}" >/dev/null || need+=("${cmd#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "test-setup: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "test-setup: missing ${need[*]}; install them (apt-get install ${need[*]}) or the tests that need them skip"
  fi
fi

npm ci --no-audit --no-fund

# Not fatal: without a root, the real-Asterisk tests skip and say why.
scripts/asterisk-root.sh >/dev/null || echo "test-setup: no Asterisk root; the real-Asterisk tests will be skipped"

# Not fatal either: without an engine or the bases, the image tests skip and say why.
if scripts/docker-engine.sh; then
  scripts/docker-bases.sh || echo "test-setup: no base images; the image tests will be skipped"
else
  echo "test-setup: no Docker engine; the image tests will be skipped"
fi
