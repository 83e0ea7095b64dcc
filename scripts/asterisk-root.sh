#!/usr/bin/env bash
# Provides a real Asterisk for the tests: a Debian sid root (Debian stable carries no Asterisk, sid
# carries the 22 LTS series) made with debootstrap outside the repository, plus a wrapper at the
# root's top that runs the root's asterisk on this host through the root's own dynamic loader, so
# Asterisk sees the host's files (temporary config dirs, our minivm-send) while using its own libraries.
#
# Usage: scripts/asterisk-root.sh [--find] [ROOT]
#   ROOT defaults to $PRIVATEDIAL_ASTERISK_ROOT or ~/.cache/privatedial/asterisk-sid.
#   Prints the wrapper's path on stdout as its last line; set ASTERISK_BIN to it.
#   Reuses an existing root. --find only reports an existing one (exit 1 if there is none).
#   Exits non-zero with a reason when the root can't be made.
set -euo pipefail

find_only=
if [ "${1:-}" = --find ]; then find_only=1; shift; fi
root=${1:-${PRIVATEDIAL_ASTERISK_ROOT:-${HOME:-/root}/.cache/privatedial/asterisk-sid}}
packages=asterisk,asterisk-modules,asterisk-core-sounds-en-gsm,ca-certificates
wrapper="$root/asterisk"

log() { printf 'asterisk-root: %s\n' "$*" >&2; }

if [ -x "$wrapper" ] && [ -e "$root/.complete" ]; then
  log "reusing $root ($("$wrapper" -V 2>/dev/null || echo 'version unknown'))"
  printf '%s\n' "$wrapper"
  exit 0
fi
[ -z "$find_only" ] || { log "no Asterisk root at $root (make one: scripts/asterisk-root.sh)"; exit 1; }

. "$(dirname "$0")/debian-sid.sh"
tmp="$root.tmp.$$"
log "debootstrap sid from the machine's Debian mirror into $tmp"
sid_debootstrap "$tmp" "$packages" || { status=$?; log "not making $root"; exit "$status"; }

# Asterisk's packaged config is not ours; the tests always pass -C with their own.
loader=$(cd "$tmp" && for f in lib64/ld-linux-*.so.* lib/ld-linux-*.so.*; do [ -e "$f" ] && { echo "$f"; break; }; done)
[ -n "$loader" ] || { log "no dynamic loader found in $tmp"; exit 1; }
multiarch=$(basename "$(dirname "$(dirname "$(echo "$tmp"/usr/lib/*/asterisk/modules)")")")

cat >"$tmp/asterisk" <<WRAP
#!/bin/sh
# Runs this root's Asterisk on the host. Modules and sounds are found by the test harness at
# \$root/usr/lib/$multiarch/asterisk/modules and \$root/usr/share/asterisk.
root=\$(dirname "\$(readlink -f "\$0")")
exec "\$root/$loader" --library-path "\$root/lib/$multiarch:\$root/usr/lib/$multiarch:\$root/usr/lib/$multiarch/asterisk" "\$root/usr/sbin/asterisk" "\$@"
WRAP
chmod 755 "$tmp/asterisk"
touch "$tmp/.complete"
rm -rf "$root"
mv "$tmp" "$root"
log "ready: $("$wrapper" -V)"
printf '%s\n' "$wrapper"
