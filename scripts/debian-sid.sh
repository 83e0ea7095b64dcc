# Sourced by the scripts that need Debian sid on a machine that runs another Debian: the Asterisk
# root for the tests (asterisk-root.sh), the Docker engine (docker-engine.sh) and the stand-in base
# images (docker-bases.sh). The mirror is the one this machine's apt already uses, so the repository
# names none. That mirror may serve a dated snapshot whose Release file has expired: apt is told not
# to check its Valid-Until.

# The Debian mirror of this machine's apt sources, or a reason on stderr and status 2.
sid_mirror() {
  local mirror
  mirror=$(
    { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
      grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}'
    } | grep -v -e security -e '^$' | grep -m1 -i debian || true
  )
  [ -n "$mirror" ] || { echo "no Debian mirror found in /etc/apt sources" >&2; return 2; }
  printf '%s\n' "$mirror"
}

# sid_debootstrap TARGET PACKAGES: a minbase sid root at TARGET (made afresh), with PACKAGES (comma
# separated, may be empty) installed. Its log goes to TARGET.log, kept only when debootstrap fails.
sid_debootstrap() {
  local target=$1 packages=$2 mirror
  [ "$(id -u)" = 0 ] || { echo "debootstrap needs root" >&2; return 2; }
  command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install debootstrap)" >&2; return 2; }
  mirror=$(sid_mirror) || return 2
  rm -rf "$target"
  mkdir -p "$(dirname "$target")"
  if ! debootstrap --variant=minbase --arch="$(dpkg --print-architecture)" ${packages:+--include="$packages"} \
    sid "$target" "$mirror" >"$target.log" 2>&1; then
    tail -n 20 "$target.log" >&2
    echo "debootstrap failed; log at $target.log" >&2
    return 1
  fi
  rm -f "$target.log"
  # apt inside the root then works against the same mirror, expired snapshot or not.
  echo 'Acquire::Check-Valid-Until "false";' >"$target/etc/apt/apt.conf.d/99check-valid-until"
}

# sid_download DIR PACKAGE...: the sid .debs of PACKAGE... (not their dependencies) into DIR, with a
# private apt state under DIR, so this machine's own apt sources stay as they are.
sid_download() {
  local dir=$1 mirror
  shift
  mirror=$(sid_mirror) || return 2
  mkdir -p "$dir/lists/partial" "$dir/debs"
  echo "deb $mirror sid main" >"$dir/sources.list"
  local apt=(-o "Dir::Etc::SourceList=$dir/sources.list" -o Dir::Etc::SourceParts=/nonexistent
    -o "Dir::State::Lists=$dir/lists" -o Acquire::Check-Valid-Until=false -o APT::Sandbox::User=root)
  apt-get "${apt[@]}" update -qq >/dev/null
  (cd "$dir/debs" && apt-get "${apt[@]}" download "$@" >/dev/null)
}
