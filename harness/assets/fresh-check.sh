#!/usr/bin/env bash
# `just fresh-check [DISTRO]...`: proves the README's quick start on a bare
# machine. For each distribution (default: debian-12) it builds a minbase
# root with debootstrap holding only what the README asks a user to have
# (build-essential, git, ca-certificates, curl, python3, python3-pip) plus
# the host's stable Rust toolchain, clones this repository's HEAD into it,
# runs the lines of the README's quick-start block word for word, and
# reports each step's outcome and time. Everything it mounts is unmounted
# on every exit. Needs root (debootstrap, chroot, mounts).
#
# Environment: FRESH_CHECK_EXTRA, more commands to run after the quick
# start (for example "just test-arm64"); FRESH_CHECK_KEEP=1 keeps the root.
set -euo pipefail

repo="$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/crosswind/fresh-check"
work="${TMPDIR:-/var/tmp}/crosswind-fresh-check"
readme="$repo/README.md"
base_packages="build-essential,git,ca-certificates,curl,python3,python3-pip"

say() { echo "fresh-check: $*"; }
die() { echo "fresh-check: $*" >&2; exit 2; }

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot and mounts): run it with sudo"
rustup_home="${RUSTUP_HOME:-$HOME/.rustup}"
rustup_bin="$(command -v rustup || true)"
[ -n "$rustup_bin" ] && [ -d "$rustup_home/toolchains" ] \
  || die "no rustup toolchain on this host to give the root (install Rust with rustup)"
git -C "$repo" diff --quiet HEAD -- || say "note: uncommitted changes are not checked (the root clones HEAD)"

# The quick start: the lines of the README's first ```sh block after the
# "## Quick start" heading, comments stripped.
mapfile -t quick_start < <(awk '
  /^## Quick start/ { in_section = 1; next }
  in_section && /^## / { exit }
  in_section && /^```sh/ { in_block = 1; next }
  in_block && /^```/ { exit }
  in_block { sub(/[[:space:]]+#.*$/, ""); if ($0 !~ /^[[:space:]]*(#|$)/) print }
' "$readme")
[ ${#quick_start[@]} -gt 0 ] || die "$readme: no \`\`\`sh block under '## Quick start'"
if [ -n "${FRESH_CHECK_EXTRA:-}" ]; then
  quick_start+=("$FRESH_CHECK_EXTRA")
fi

if ! command -v debootstrap >/dev/null; then
  say "installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null 2>&1 \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; } \
    || die "cannot install debootstrap"
fi

mounted=()
root=""
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount -l "${mounted[i]}" 2>/dev/null || true
  done
  mounted=()
  if [ -n "$root" ] && [ -d "$root" ] && [ "${FRESH_CHECK_KEEP:-0}" != 1 ]; then
    # Never delete through a mount that is still there.
    if grep -q " $root/" /proc/mounts; then
      say "left $root in place: something is still mounted under it"
    else
      rm -rf "$root"
    fi
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bind() { # bind SRC DEST [ro]
  mkdir -p "$2"
  mount --bind "$1" "$2"
  mounted+=("$2")
  if [ "${3:-}" = ro ]; then mount -o remount,bind,ro "$2"; fi
}

# A pristine root per distribution, cached as a tarball so that a second
# check skips debootstrap; each check unpacks a new copy.
pristine() { # pristine DISTRO -> path of the tarball
  local distro="$1" suite tarball
  case "$distro" in
    debian-12) suite=bookworm ;;
    ubuntu-24.04)
      suite=noble
      [ -e "/usr/share/debootstrap/scripts/$suite" ] \
        || die "ubuntu-24.04: this host's debootstrap has no '$suite' script (and Debian ships no Ubuntu archive key): run the workflow's bare-container job instead"
      ;;
    *) die "unknown distribution '$distro' (debian-12 or ubuntu-24.04)" ;;
  esac
  tarball="$cache/$distro-minbase.tar"
  if [ ! -s "$tarball" ]; then
    mkdir -p "$cache"
    local tmp="$work/debootstrap-$distro"
    rm -rf "$tmp"
    say "$distro: debootstrap --variant=minbase $suite (a few minutes, once)" >&2
    debootstrap --variant=minbase --include="$base_packages" "$suite" "$tmp" \
      >"$cache/$distro-debootstrap.log" 2>&1 \
      || { tail -20 "$cache/$distro-debootstrap.log" >&2; die "$distro: debootstrap failed (log: $cache/$distro-debootstrap.log)"; }
    tar -C "$tmp" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
    rm -rf "$tmp"
  fi
  echo "$tarball"
}

# Sets overall=1 when a step fails; any other error ends the script.
check() { # check DISTRO
  local distro="$1" tarball log check_start=$SECONDS
  tarball="$(pristine "$distro")"
  root="$work/$distro"
  rm -rf "$root"
  mkdir -p "$root"
  tar -C "$root" -xf "$tarball"
  log="$cache/$distro-$(date +%Y%m%d-%H%M%S).log"

  mount -t proc proc "$root/proc"; mounted+=("$root/proc")
  mount -t sysfs sysfs "$root/sys"; mounted+=("$root/sys")
  bind /dev "$root/dev"
  bind /dev/pts "$root/dev/pts"
  [ -d /dev/shm ] && bind /dev/shm "$root/dev/shm"
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  # The host's network, not the project's needs: a host behind a
  # TLS-inspecting proxy trusts a local CA, and its apt may need Acquire
  # settings; the root gets the same, so that only packages differ.
  local netenv=()
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null 2>&1 \
      || die "$distro: update-ca-certificates failed in the root"
  fi
  local f var
  for f in /etc/apt/apt.conf.d/*; do
    if [ ! -e "$root$f" ] && grep -q '^Acquire::' "$f" 2>/dev/null; then cp "$f" "$root$f"; fi
  done
  for var in NODE_EXTRA_CA_CERTS SSL_CERT_FILE SSL_CERT_DIR CURL_CA_BUNDLE GIT_SSL_CAINFO \
      http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    [ -n "${!var:-}" ] && netenv+=("$var=${!var}")
  done
  # The host's Rust: its toolchains read-only, rustup's proxies on the PATH
  # where rustup's installer puts them (~/.cargo/bin).
  bind "$rustup_home" "$root/root/.rustup" ro
  mkdir -p "$root/root/.cargo/bin"
  cp "$rustup_bin" "$root/root/.cargo/bin/rustup"
  for tool in cargo rustc rustdoc rustfmt cargo-fmt cargo-clippy clippy-driver; do
    ln -sf rustup "$root/root/.cargo/bin/$tool"
  done
  bind "$repo" "$root/mnt/crosswind-src" ro

  local run=(env -i HOME=/root LANG=C.UTF-8 TERM=dumb "${netenv[@]}"
    PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    chroot "$root" bash -c)
  say "$distro: log in $log"
  local steps=("git clone /mnt/crosswind-src /root/crosswind" "${quick_start[@]}")
  local i cmd start rc
  for i in "${!steps[@]}"; do
    cmd="${steps[i]}"
    start=$SECONDS
    local dir=/root
    [ "$i" -gt 0 ] && dir=/root/crosswind
    echo "== $cmd" >>"$log"
    if "${run[@]}" "cd $dir && $cmd" >>"$log" 2>&1; then rc=0; else rc=$?; fi
    local took=$((SECONDS - start))
    if [ $rc -eq 0 ]; then
      say "$distro: ok      $cmd ($((took / 60)) min $((took % 60)) s)"
    else
      say "$distro: FAILED  $cmd (exit $rc, $((took / 60)) min $((took % 60)) s); the end of its output:"
      tail -40 "$log" | sed 's/^/  | /'
      overall=1
      break
    fi
  done
  if [ "$overall" = 0 ]; then
    say "$distro: the quick start passed on a bare root ($(((SECONDS - check_start) / 60)) min in all)"
  fi
  cleanup
  root=""
}

overall=0
distros=("$@")
[ ${#distros[@]} -gt 0 ] || distros=(debian-12)
for d in "${distros[@]}"; do
  check "$d"
done
exit $overall
