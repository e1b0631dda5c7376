#!/usr/bin/env bash
# Installs the Debian packages of apt-packages.txt (beside this script) that
# are missing, with apt-get as root or through sudo. Quiet when it works; on
# failure it prints apt's own output and exits non-zero. Used by `just
# setup` (before crosswind itself can be built: the Unicorn crate needs
# cmake, pkg-config and libclang) and by .ci/run.
set -euo pipefail
list="$(dirname "$0")/apt-packages.txt"

need=()
while read -r pkg cmd; do
  case "$pkg" in ''|'#'*) continue ;; esac
  if [ "$cmd" = "-" ]; then
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
  else
    command -v "$cmd" >/dev/null || need+=("$pkg")
  fi
done < "$list"
[ ${#need[@]} -eq 0 ] && exit 0

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || {
    echo "setup: need root to install ${need[*]}: run 'sudo apt-get install ${need[*]}'" >&2
    exit 1
  }
  SUDO=(sudo)
fi
# `env` carries the settings through sudo, which drops the caller's.
apt=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes apt-get)

echo "setup: installing ${need[*]}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! { "${apt[@]}" update -qq && "${apt[@]}" install -y -qq --no-install-recommends "${need[@]}"; } >"$log" 2>&1; then
  echo "setup: apt-get failed:" >&2
  cat "$log" >&2
  exit 1
fi
