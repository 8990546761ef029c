#!/usr/bin/env bash
# The project's Python environment, in one place. Every make target goes through here.
#
#   tools/env.sh ensure        build the environment if needed (reused when already built)
#   tools/env.sh exec CMD...   run CMD inside it, in the current directory, with the repo importable
#   tools/env.sh info          print the route and where things live
#   tools/env.sh selftest      check that paths inside are this machine's own (make test runs it)
#   tools/env.sh lock          re-resolve pyproject.toml into the lock file
#
# Two routes, chosen automatically (override with TFX_ENV_ROUTE=native|rootfs):
#   native  a virtualenv on this machine's own Python. Needs CPython 3.11-3.13 and, on Linux,
#           glibc >= 2.39: ml-metadata 1.21 and TFDV 1.21 ship only manylinux_2_39 wheels.
#   rootfs  otherwise (Debian 12, Ubuntu 22.04): a Debian 13 root filesystem made by debootstrap,
#           with the virtualenv inside it. Commands run chrooted in a private mount namespace
#           where the host's own directories (/home, /root, /tmp, /work, /opt, ...) are bound at
#           the same paths, so every path a user gives means the same thing inside and out.
#
# Both live under the cache directory (TFX_PIPELINE_CACHE, default ~/.cache/tfx-taxi-pipeline),
# outside the clone, keyed by the lock file, so other clones and CI runs reuse them. A build
# writes a .complete marker last: anything without it is half-built and is rebuilt, never used.
# Those paths are what every machine has already built: changing one rebuilds everywhere.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
LOCK_FILE=${TFX_ENV_LOCK:-$REPO/requirements/lock.txt}   # TFX_ENV_LOCK: for the tests of this script
CACHE=${TFX_PIPELINE_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/tfx-taxi-pipeline}
# The Debian release of the rootfs: the one the Kubeflow image is built FROM (a Dockerfile cannot
# read it from elsewhere, so it is defined there).
SUITE=$(sed -n 's/^FROM debian:\([a-z]*\).*/\1/p' "$REPO/Dockerfile" | head -n 1)
[ -n "$SUITE" ] || { printf 'env: error: %s\n' "no 'FROM debian:<release>' line in $REPO/Dockerfile" >&2; exit 1; }
UV_VERSION=0.13.9   # resolves the lock (make lock) only; installs use plain pip
ROOTFS=$CACHE/rootfs-$SUITE
# DEBIAN_PACKAGES (the rootfs and the image), ROOTFS_PACKAGES and ROOTFS_EXTRA_PACKAGES (the rootfs).
# shellcheck source=tools/debian.env
. "$REPO/tools/debian.env"
# Host top-level directories that belong to the host's OS, not to the user: never bound over the rootfs.
SYSTEM_DIRS=" bin boot dev etc lib lib32 lib64 libx32 lost+found proc run sbin sys usr var "

say() { printf 'env: %s\n' "$*" >&2; }
die() { printf 'env: error: %s\n' "$*" >&2; exit 1; }

sha256() { if command -v sha256sum >/dev/null; then sha256sum "$1"; else shasum -a 256 "$1"; fi; }
lock_key() {
  [ -f "$LOCK_FILE" ] || die "no lock file at $LOCK_FILE ('make lock' writes it)"
  sha256 "$LOCK_FILE" | cut -c1-12
}

# Prints why this machine's Python cannot take the stack's wheels; prints nothing when it can.
native_blocker() {
  local py=${PYTHON:-python3}
  command -v "$py" >/dev/null 2>&1 || { echo "no $py on PATH"; return; }
  "$py" - <<'EOF'
import os, sys
if not (3, 11) <= sys.version_info[:2] <= (3, 13):
    print(f"Python {sys.version_info[0]}.{sys.version_info[1]} is outside the lock's 3.11-3.13")
elif sys.platform.startswith("linux"):
    name, version = (os.confstr("CS_GNU_LIBC_VERSION") or "unknown 0.0").split()
    if name != "glibc" or tuple(int(p) for p in version.split(".")[:2]) < (2, 39):
        print(f"{name} {version} < 2.39 needed by the ml-metadata/TFDV 1.21 wheels")
EOF
}

# Sets ROUTE, WHY, VENV (the venv's path where commands run) and VENV_HOST (the same, seen from here).
choose_route() {
  case ${TFX_ENV_ROUTE:-auto} in
    native|rootfs) ROUTE=$TFX_ENV_ROUTE; WHY="TFX_ENV_ROUTE=$TFX_ENV_ROUTE" ;;
    auto)
      local blocker; blocker=$(native_blocker)
      if [ -z "$blocker" ]; then ROUTE=native; WHY="this machine's Python takes the wheels"
      else ROUTE=rootfs; WHY=$blocker; fi ;;
    *) die "TFX_ENV_ROUTE must be native, rootfs or auto, not '${TFX_ENV_ROUTE}'" ;;
  esac
  if [ "$ROUTE" = native ]; then
    local pyver; pyver=$("${PYTHON:-python3}" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    VENV=$CACHE/venv-py$pyver-$(lock_key)   # as seen from the host and from inside: the same path
    VENV_HOST=$VENV
  else
    VENV=/usr/local/tfx-venvs/$(lock_key)   # inside the rootfs (its /usr is never bound over)
    VENV_HOST=$ROOTFS$VENV
  fi
}

# One build at a time, also across clones and CI runs sharing the cache: "$@" runs holding the
# cache's lock, so a second caller waits here, then finds the work done (each build step checks
# its marker again once it holds the lock). No flock (macOS): no lock.
with_build_lock() {
  exec 9>"$CACHE/.build.lock"
  if command -v flock >/dev/null; then flock 9; fi
  "$@"
  exec 9>&-
}

# --- the Debian 13 root filesystem ------------------------------------------------------------

host_debian_mirror() {
  # The mirror the host's own apt uses, so debootstrap goes where apt is known to reach.
  grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list \
      /etc/apt/sources.list 2>/dev/null | grep -oE 'https?://[^ ]+/debian/?' | grep -v security | head -n1
}

build_rootfs() {
  [ -f "$ROOTFS/.complete" ] && return
  [ "$(id -u)" = 0 ] || die "the rootfs route needs root (debootstrap and chroot); run as root, or use a machine with glibc >= 2.39 for the native route"
  if ! command -v debootstrap >/dev/null 2>&1; then
    say "installing debootstrap (apt-get)"
    apt-get update -qq || die "apt-get update failed: debootstrap cannot be installed"
    # The keyring lets debootstrap verify Debian's archive on non-Debian hosts (Ubuntu) too.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap debian-archive-keyring >/dev/null \
      || die "apt-get install debootstrap failed"
  fi
  rm -rf "$ROOTFS.partial" "$ROOTFS"
  say "building a Debian 13 ($SUITE) root filesystem in $ROOTFS (about a minute, once)"
  local mirror; mirror=$(host_debian_mirror || true)
  local packages include
  read -ra packages <<< "$DEBIAN_PACKAGES $ROOTFS_PACKAGES"
  include=$(IFS=,; echo "${packages[*]}")   # debootstrap takes a comma-separated list
  # Its own mount namespace: the /proc debootstrap mounts cannot outlive an interrupted build.
  unshare --mount --propagation private -- debootstrap --variant=minbase \
    --include="$include" "$SUITE" "$ROOTFS.partial" ${mirror:+"$mirror"} \
    > "$CACHE/debootstrap.log" 2>&1 || die "debootstrap failed; see $CACHE/debootstrap.log"
  touch "$ROOTFS.partial/.complete"
  mv "$ROOTFS.partial" "$ROOTFS"
}

rootfs_extras_marker() { echo "$ROOTFS/.extras-$(printf '%s' "$ROOTFS_EXTRA_PACKAGES" | cksum | cut -d' ' -f1)"; }

# CI=true (as tests/conftest.py reads it: 1, true or yes, any case): the tests that need the extras
# would only be skipped, which CI counts as a failure, so a missing extra stops the build here.
in_ci() { case $(printf '%s' "${CI:-}" | tr '[:upper:]' '[:lower:]') in 1|true|yes) return 0 ;; esac; return 1; }

# Elsewhere a missing extra is a note: the tests that need it are skipped, with their reason.
extras_missing() {
  if in_ci; then die "CI=true: $1; the tests that need $ROOTFS_EXTRA_PACKAGES cannot run"; fi
  say "$1; tests that need them are skipped"
}

install_rootfs_extras() {
  local marker; marker=$(rootfs_extras_marker)
  [ -f "$marker" ] && return
  if [ "$(id -u)" != 0 ]; then extras_missing "not root: cannot add $ROOTFS_EXTRA_PACKAGES to the rootfs"; return; fi
  say "adding $ROOTFS_EXTRA_PACKAGES to the rootfs (once; log: $CACHE/rootfs-extras.log)"
  # shellcheck disable=SC2086  # the list is meant to split
  if rootfs_exec /usr/bin/env DEBIAN_FRONTEND=noninteractive /bin/sh -c \
      'apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@"' sh $ROOTFS_EXTRA_PACKAGES \
      > "$CACHE/rootfs-extras.log" 2>&1; then
    touch "$marker"
  else
    extras_missing "could not add $ROOTFS_EXTRA_PACKAGES to the rootfs (see $CACHE/rootfs-extras.log)"
  fi
}

# The native route on a Debian-based host: the same extras from the host's own apt, once per list.
# (On a host that runs systemd, Debian starts the services a package ships; the tests start their
# own servers on free ports.) Elsewhere they are the user's to install, under Debian's names.
native_extras_marker() { echo "$CACHE/.native-extras-$(printf '%s' "$ROOTFS_EXTRA_PACKAGES" | cksum | cut -d' ' -f1)"; }

install_native_extras() {
  local marker wanted installed; marker=$(native_extras_marker)
  [ -f "$marker" ] && return
  read -ra wanted <<< "$ROOTFS_EXTRA_PACKAGES"
  if command -v dpkg-query >/dev/null; then
    installed=$(dpkg-query -W -f='${db:Status-Status}\n' "${wanted[@]}" 2>/dev/null | grep -cx installed || true)
    if [ "$installed" = "${#wanted[@]}" ]; then touch "$marker"; return; fi
  fi
  if ! command -v apt-get >/dev/null; then extras_missing "no apt-get: install $ROOTFS_EXTRA_PACKAGES yourself"; return; fi
  if [ "$(id -u)" != 0 ]; then extras_missing "not root: cannot apt-get install $ROOTFS_EXTRA_PACKAGES"; return; fi
  say "installing $ROOTFS_EXTRA_PACKAGES (apt-get, once; log: $CACHE/native-extras.log)"
  if { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
         "${wanted[@]}"; } > "$CACHE/native-extras.log" 2>&1; then
    touch "$marker"
  else
    extras_missing "could not apt-get install $ROOTFS_EXTRA_PACKAGES (see $CACHE/native-extras.log)"
  fi
}

# Runs "$@" chrooted into the rootfs. Called inside a private mount namespace (see rootfs_exec).
enter_rootfs() {
  local d name cwd
  # The rootfs its own mount point, as a container's root is: tools that make / private inside
  # (unshare --propagation, buildah unpacking a layer) fail with EINVAL on a plain directory.
  mount --bind "$ROOTFS" "$ROOTFS"
  for name in dev proc sys; do mount --rbind "/$name" "$ROOTFS/$name"; done
  for d in /*; do
    name=${d#/}
    [ -d "$d" ] || continue
    case "$SYSTEM_DIRS" in *" $name "*) continue ;; esac
    if [ -L "$d" ]; then   # e.g. /data -> /mnt/disk: the same link inside, to the bound target
      [ -e "$ROOTFS$d" ] || ln -s "$(readlink "$d")" "$ROOTFS$d"
    else
      mkdir -p "$ROOTFS$d" && mount --rbind "$d" "$ROOTFS$d"
    fi
  done
  # The cache (so the rootfs itself) usually sits under a bound directory such as /root: hide that
  # nested view, so nothing run inside can walk back into the binds through it.
  [ -d "$ROOTFS$ROOTFS" ] && mount -t tmpfs -o ro,size=4k,mode=0555 rootfs-self "$ROOTFS$ROOTFS"
  for d in /var/tmp "$REPO" "$PWD" "${HOME:-}" "${TMPDIR:-}"; do   # user paths under system dirs
    [ -n "$d" ] || continue
    name=${d#/}; name=${name%%/*}
    case "$SYSTEM_DIRS" in *" $name "*) ;; *) continue ;; esac
    [ -d "$d" ] && ! mountpoint -q "$ROOTFS$d" || continue
    mkdir -p "$ROOTFS$d" && mount --rbind "$d" "$ROOTFS$d"
  done
  # The host's name resolution and trusted CAs (a site may add its own CA), bound file by file.
  for f in /etc/resolv.conf /etc/hosts /etc/ssl/certs/ca-certificates.crt \
           "${PIP_CERT:-}" "${SSL_CERT_FILE:-}" "${REQUESTS_CA_BUNDLE:-}"; do
    case "$f" in /etc/*) ;; *) continue ;; esac   # files elsewhere are visible through their directory
    [ -f "$f" ] || continue
    mkdir -p "$(dirname "$ROOTFS$f")" && { [ -e "$ROOTFS$f" ] || touch "$ROOTFS$f"; }
    mount --bind "$(readlink -f "$f")" "$ROOTFS$f"
  done
  cwd=$PWD
  exec chroot "$ROOTFS" /usr/bin/env -u LD_LIBRARY_PATH -u PYTHONHOME -u LD_PRELOAD \
    PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    /bin/sh -c 'cd "$0" && exec "$@"' "$cwd" "$@"
}

# Paths the user named (the Makefile passes OUTPUT_DIR and DATA_DIR in TFX_ENV_USER_PATHS) must
# mean the same inside: refuse, before anything runs, those the rootfs keeps as its own.
check_user_paths() {
  local p abs name
  for p in ${TFX_ENV_USER_PATHS:-}; do
    case "$p" in /*) abs=$p ;; *) abs=$PWD/$p ;; esac
    name=${abs#/}; name=${name%%/*}
    case "$SYSTEM_DIRS" in *" $name "*) ;; *) continue ;; esac
    case "$abs/" in /var/tmp/*|"$REPO"/*|"$PWD"/*|"${HOME:-/nonexistent}"/*) continue ;; esac
    die "$p is under /$name, which the Debian 13 rootfs keeps as its own: a run would not see this machine's files there. Use a path under /home, /root, /tmp, /var/tmp, /work, ... instead"
  done
}

rootfs_exec() { unshare --mount --propagation private -- "$BASH" "$REPO/tools/env.sh" __enter "$@"; }

# --- the virtualenv -------------------------------------------------------------------------------

# Runs "$@" where the venv's Python is: on the host, or inside the rootfs.
in_route() { if [ "$ROUTE" = native ]; then "$@"; else rootfs_exec "$@"; fi; }

build_venv() {
  [ -f "$VENV_HOST/.complete" ] && return
  rm -rf "$VENV_HOST"
  local base_python=python3
  [ "$ROUTE" = native ] && base_python=${PYTHON:-python3}
  local log=$CACHE/install.log
  say "installing the locked stack into $VENV_HOST (a few minutes, once per lock file; log: $log)"
  in_route "$base_python" -m venv "$VENV" > "$log" 2>&1 || { tail -n 20 "$log" >&2; die "could not create a virtualenv at $VENV_HOST"; }
  # Interrupting this leaves no .complete, so the next call starts the venv over.
  if ! in_route "$VENV/bin/python" -m pip install -r "$LOCK_FILE" >> "$log" 2>&1; then
    grep -v 'is ignored: it is neither' "$log" | tail -n 20 >&2
    die "pip install -r ${LOCK_FILE#$REPO/} failed (route $ROUTE); nothing was marked complete; full log: $log"
  fi
  touch "$VENV_HOST/.complete"
  prune_old_venvs
}

prune_old_venvs() {
  # A venv holds the whole TensorFlow stack: keep this one and the most recent other one (another
  # clone may use it), remove older ones.
  local pattern old
  if [ "$ROUTE" = native ]; then pattern="$CACHE/venv-py*"; else pattern="$ROOTFS/usr/local/tfx-venvs/????????????"; fi
  # shellcheck disable=SC2086  # the pattern is meant to glob
  ls -1dt $pattern 2>/dev/null | grep -vxF "$VENV_HOST" | tail -n +2 | while read -r old; do rm -rf "$old"; done || true
}

# What a build under the lock makes: the rootfs on that route, then the venv.
build_env() {
  [ "$ROUTE" = rootfs ] && build_rootfs
  build_venv
}

# --- the subcommands ------------------------------------------------------------------------------

cmd_ensure() {
  mkdir -p "$CACHE"
  choose_route
  if [ ! -f "$VENV_HOST/.complete" ] || { [ "$ROUTE" = rootfs ] && [ ! -f "$ROOTFS/.complete" ]; }; then
    with_build_lock build_env
  fi
  if [ "$ROUTE" = rootfs ] && [ ! -f "$(rootfs_extras_marker)" ]; then
    with_build_lock install_rootfs_extras
  elif [ "$ROUTE" = native ] && [ ! -f "$(native_extras_marker)" ]; then
    with_build_lock install_native_extras
  fi
  say "route=$ROUTE ($WHY); python=$VENV_HOST"
}

cmd_exec() {
  [ $# -gt 0 ] || die "usage: tools/env.sh exec COMMAND [ARGS...]"
  # Already inside (a make target called from 'make exec', say): run it here, don't nest.
  [ "${TFX_ENV_ACTIVE:-}" = 1 ] && exec "$@"
  choose_route
  [ "$ROUTE" = rootfs ] && check_user_paths   # before any build: a refusal costs nothing
  cmd_ensure
  # Keras 2 for every process, also scripts that import TensorFlow before the project's code
  # (models/__init__.py makes the same choice for Python entry points).
  export TFX_ENV_ACTIVE=1 TF_USE_LEGACY_KERAS=1 VIRTUAL_ENV=$VENV
  if [ "$ROUTE" = native ]; then
    export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
    PATH=$REPO/tools/bin:$VENV/bin:$PATH exec "$@"
  else
    export PYTHONPATH=$REPO   # the host's own PYTHONPATH is for its Python, not the rootfs's
    rootfs_exec /usr/bin/env PATH="$REPO/tools/bin:$VENV/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" "$@"
  fi
}

cmd_info() {
  choose_route
  echo "route=$ROUTE reason=$WHY cache=$CACHE venv=$VENV_HOST"
}

# The path promise, checked both ways: what the host writes under /tmp, $HOME and the current
# directory, the environment reads at the same paths, and what it writes the host reads.
cmd_selftest() {
  cmd_ensure
  # Not local: the EXIT trap removes them after this function has returned.
  probe=$(mktemp -d "${TMPDIR:-/tmp}/tfx-env-selftest.XXXXXX")
  home_probe=$(mktemp "${HOME:-/root}/.tfx-env-selftest.XXXXXX")
  trap 'rm -rf "$probe" "$home_probe"' EXIT
  echo host > "$probe/from-host"; echo host > "$home_probe"
  "$BASH" "$REPO/tools/env.sh" exec python -c '
import os, sys
probe, home_probe, cwd = sys.argv[1:4]
assert open(probe + "/from-host").read() == "host\n", "the host /tmp is not visible"
assert open(home_probe).read() == "host\n", "the host $HOME is not visible"
assert os.getcwd() == cwd, f"cwd {os.getcwd()} != {cwd}"
open(probe + "/from-env", "w").write("env\n")
' "$probe" "$home_probe" "$PWD" 2>/dev/null || die "selftest: the environment does not see this machine's paths"
  [ "$(cat "$probe/from-env" 2>/dev/null)" = env ] || die "selftest: files written inside the environment are not on this machine"
  say "selftest: /tmp, \$HOME and the current directory are this machine's own paths, both ways"
}

# Re-resolves pyproject.toml's ranges into the lock: one universal file (markers where the
# Python version matters) for CPython 3.11-3.13, so both routes install from the same lock.
cmd_lock() {
  mkdir -p "$CACHE"; choose_route
  [ "$ROUTE" = rootfs ] && build_rootfs
  VENV=${VENV%/*}/lock-scratch; VENV_HOST=${VENV_HOST%/*}/lock-scratch
  rm -rf "$VENV_HOST"
  in_route python3 -m venv "$VENV"
  in_route "$VENV/bin/python" -m pip install --quiet "uv==$UV_VERSION"
  # uv keeps the versions already in the output file where they still fit (a new dependency
  # moves nothing else); LOCK_UPGRADE=1 re-resolves everything to the newest allowed.
  local pins=$LOCK_FILE.pins
  if [ -f "$LOCK_FILE" ] && [ -z "${LOCK_UPGRADE:-}" ]; then cp "$LOCK_FILE" "$pins"; else : > "$pins"; fi
  in_route "$VENV/bin/uv" pip compile --quiet --no-header --universal --python-version 3.11 \
    --extra dev -o "$pins" "$REPO/pyproject.toml"
  { echo "# The exact versions every install gets (CPython 3.11-3.13). Generated by 'make lock'"
    echo "# from pyproject.toml with uv $UV_VERSION (pip compile --universal); do not edit by hand."
    cat "$pins"; } > "$LOCK_FILE.partial"
  rm -f "$pins"; mv "$LOCK_FILE.partial" "$LOCK_FILE"
  rm -rf "$VENV_HOST"; say "wrote $LOCK_FILE"
}

case ${1:-} in
  ensure) cmd_ensure ;;
  exec) shift; cmd_exec "$@" ;;
  info) cmd_info ;;
  selftest) cmd_selftest ;;
  lock) cmd_lock ;;
  __enter) shift; enter_rootfs "$@" ;;   # rootfs_exec's second half, inside the new namespace
  *) die "usage: tools/env.sh ensure | exec COMMAND [ARGS...] | info | selftest | lock" ;;
esac
