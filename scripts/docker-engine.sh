#!/usr/bin/env bash
# A Docker engine and `docker compose` v2 for the image tests, idempotent: a second run reuses a
# daemon that answers. Debian sid's docker.io (engine 28) rather than this Debian's own: users run
# Docker 25 or later, and the image's HEALTHCHECK uses --start-interval, which older engines refuse.
# Its dependencies (containerd, runc, iptables) come from this machine's Debian; sid's docker.io,
# docker-cli, docker-compose (the v2 CLI plugin) and tini-static are single static-ish binaries that
# need only libc 2.34.
#
# dockerd runs detached in its own session, logging to $PRIVATEDIAL_DOCKERD_LOG
# (/var/log/privatedial-dockerd.log), so it holds none of the caller's output open.
# Exits 2 with a reason when no engine can be had here (not root, no apt).
set -euo pipefail
log() { printf 'docker-engine: %s\n' "$*" >&2; }
daemon_log=${PRIVATEDIAL_DOCKERD_LOG:-/var/log/privatedial-dockerd.log}

answers() { timeout 10 docker info >/dev/null 2>&1; }

if ! command -v dockerd >/dev/null || ! docker compose version >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || { log "not root: can't install Docker (apt-get install docker.io docker-compose)"; exit 2; }
  command -v apt-get >/dev/null || { log "no apt-get: install Docker 25+ with compose v2 yourself"; exit 2; }
  . "$(dirname "$0")/debian-sid.sh"
  cache=/var/cache/privatedial/sid-apt
  log "installing Debian sid's docker.io, docker-cli, docker-compose (dependencies from this machine's Debian)"
  rm -rf "$cache/debs"
  sid_download "$cache" docker.io docker-cli docker-compose tini-static
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$cache"/debs/*.deb >/dev/null
fi

if answers; then
  log "reusing the running engine ($(docker version -f '{{.Server.Version}}'))"
  exit 0
fi
[ "$(id -u)" = 0 ] || { log "not root: can't start dockerd"; exit 2; }
# A daemon that died leaves its pid file behind; dockerd refuses to start over it.
if [ -e /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
  rm -f /var/run/docker.pid
fi
if ! pgrep -x dockerd >/dev/null; then
  log "starting dockerd (log: $daemon_log)"
  setsid dockerd </dev/null >>"$daemon_log" 2>&1 &
fi
for _ in $(seq 120); do
  answers && { log "engine $(docker version -f '{{.Server.Version}}') is up"; exit 0; }
  sleep 0.5
done
tail -n 20 "$daemon_log" >&2
log "dockerd did not answer within 60 s; log at $daemon_log"
exit 1
