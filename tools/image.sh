#!/usr/bin/env bash
# The Kubeflow image (./Dockerfile), built with buildah: no Docker daemon, no registry needed.
#
#   tools/image.sh build            make image: build (cached) and tag it; prints the image reference
#   tools/image.sh name             the reference `build` tags for this checkout (nothing is built)
#   tools/image.sh size             make image-size: the image's size and its biggest parts
#   tools/image.sh push REGISTRY    make image-push: tag for REGISTRY and push (DRY_RUN=1: print only)
#   tools/image.sh run IMAGE [OPTIONS] -- CMD   a command in a new container of IMAGE (tests/kfp_launcher.py)
#   tools/image.sh buildah ARGS     buildah itself on the project's image store
#
# No registry can be reached where this is built, so the Dockerfile's `FROM debian:<release>` is
# replaced (`buildah build --from`) by a base made here: `debootstrap --variant=minbase <release>`,
# committed once as localhost/tfx-taxi-base:<release>. Layers are cached (--layers): a change of
# code only rebuilds the last two; a new lock rebuilds from the pip step. Each build is tagged
# <commit> (with -dirty for uncommitted changes) and lock-<hash of the lock file>; images of an
# older lock are removed. The store lives in the cache directory, beside the environment
# (IMAGE_STORE; IMAGE_STORAGE_DRIVER overlay, or vfs where overlay cannot mount, with its own
# IMAGE_STORE: a store keeps the driver it was made with).
# Runs inside the project environment (make image: tools/env.sh exec), which installs buildah and
# debootstrap (tools/debian.env); run directly as root, it installs them with apt-get when missing.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
CACHE=${TFX_PIPELINE_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/tfx-taxi-pipeline}
STORE=${IMAGE_STORE:-$CACHE/containers}
export STORAGE_DRIVER=${IMAGE_STORAGE_DRIVER:-overlay} BUILDAH_ISOLATION=chroot
IMAGE_NAME=${IMAGE_NAME:-localhost/tfx-taxi}
# The release, as tools/env.sh reads it: the Dockerfile's FROM line.
SUITE=$(sed -n 's/^FROM debian:\([a-z]*\).*/\1/p' "$REPO/Dockerfile" | head -n 1)
BASE=localhost/tfx-taxi-base:$SUITE
# The host's CA bundle, for pip inside the build (a site may intercept TLS with its own CA).
CA_BUNDLE=${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}

say() { printf 'image: %s\n' "$*" >&2; }
die() { printf 'image: error: %s\n' "$*" >&2; exit 1; }

bah() { buildah --root "$STORE/storage" --runroot "$STORE/run" "$@"; }
# buildah raises the open-files and process limits to 1048576 in each container unless told
# otherwise, which fails where this process may not raise its own (as in CI containers): the
# containers get the limits this process has, through a containers.conf of the store's own.
limits_conf() {
  mkdir -p "$STORE"
  printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n' \
    "$(ulimit -Sn)" "$(ulimit -Hn)" "$(ulimit -Su)" "$(ulimit -Hu)" > "$STORE/containers.conf"
  export CONTAINERS_CONF=$STORE/containers.conf
}

host_tools() {
  limits_conf
  local missing=()
  command -v buildah >/dev/null 2>&1 || missing+=(buildah)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  command -v git >/dev/null 2>&1 || missing+=(git)
  [ -x /usr/lib/podman/netavark ] || command -v netavark >/dev/null 2>&1 || missing+=(netavark)   # buildah starts no container without it
  [ ${#missing[@]} = 0 ] && return
  [ "$(id -u)" = 0 ] || die "${missing[*]} missing and not root: install ${missing[*]} (Debian: apt-get install ${missing[*]})"
  say "installing ${missing[*]} (apt-get)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
    >/dev/null || die "apt-get install ${missing[*]} failed"
}

lock_key() { sha256sum "$REPO/requirements/lock.txt" | cut -c1-12; }

commit_tag() {
  local tag; tag=$(git -C "$REPO" rev-parse --short=12 HEAD 2>/dev/null) || die "not a git checkout: no commit to tag the image with"
  [ -z "$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null)" ] || tag=$tag-dirty
  echo "$tag"
}

host_debian_mirror() {   # as tools/env.sh: where this machine's apt is known to reach
  grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list \
      /etc/apt/sources.list 2>/dev/null | grep -oE 'https?://[^ ]+/debian/?' | grep -v security | head -n1
}

# The stand-in for debian:<release>-slim: a minbase debootstrap, committed once as one layer.
build_base() {
  bah inspect --type image "$BASE" >/dev/null 2>&1 && return
  local dir=$STORE/base-$SUITE.partial mirror ctr
  rm -rf "$dir"; mkdir -p "$dir"
  mirror=$(host_debian_mirror || true)
  say "making the base image $BASE (debootstrap --variant=minbase $SUITE; once; log: $STORE/base.log)"
  unshare --mount --propagation private -- debootstrap --variant=minbase "$SUITE" "$dir" ${mirror:+"$mirror"} \
    > "$STORE/base.log" 2>&1 || die "debootstrap failed; see $STORE/base.log"
  # What debian:*-slim leaves out as well: apt's lists and caches, docs (the image needs neither).
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb "$dir"/usr/share/doc/*
  ctr=$(bah from scratch)
  bah copy "$ctr" "$dir" / >/dev/null
  bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd /bin/bash "$ctr"
  bah commit --rm -q "$ctr" "$BASE" >/dev/null
  rm -rf "$dir"
}

cmd_build() {
  host_tools
  mkdir -p "$STORE"
  exec 9>"$STORE/.build.lock"; flock 9   # one build at a time on this store
  build_base
  local key tag start cadir
  key=$(lock_key); tag=$(commit_tag); start=$(date +%s)
  prune_other_locks "$key"
  # pip in the build trusts the host's CAs: a copy of the bundle, bound for the RUN steps only at
  # /mnt (empty in every Debian image, so the bind leaves no mount point behind) and named by the
  # Dockerfile's PIP_CERT build argument. The image's own CA bundle stays Debian's.
  cadir=$STORE/build-ca; rm -rf "$cadir"; mkdir -p "$cadir"; cp "$(readlink -f "$CA_BUNDLE")" "$cadir/ca.crt"
  say "building $IMAGE_NAME:$tag from $BASE (log: $STORE/build.log)"
  if ! bah build --layers --from "$BASE" --volume "$cadir:/mnt:ro" --build-arg PIP_CERT=/mnt/ca.crt \
      -t "$IMAGE_NAME:$tag" -t "$IMAGE_NAME:lock-$key" -f "$REPO/Dockerfile" "$REPO" > "$STORE/build.log" 2>&1; then
    tail -n 30 "$STORE/build.log" >&2
    die "buildah build failed; full log: $STORE/build.log"
  fi
  prune_older_builds "$key"
  say "built $IMAGE_NAME:$tag (lock-$key) in $(( $(date +%s) - start )) s"
  echo "$IMAGE_NAME:$tag"
}

# A new lock: the images of older locks go first (each holds the whole TensorFlow stack), with
# their cached layers. Within one lock the cached layers stay (that is the cache), and only the
# images of earlier builds are removed by their commit tags (the layers they share stay).
prune_other_locks() {
  local key=$1 ref
  bah inspect --type image "$IMAGE_NAME:lock-$key" >/dev/null 2>&1 && return
  for ref in $(bah images --format '{{.Name}}:{{.Tag}}' 2>/dev/null || true); do
    case "$ref" in "$IMAGE_NAME":*) say "removing $ref (another lock)"; bah rmi -f "$ref" >/dev/null 2>&1 || true ;; esac
  done
  bah rmi --prune >/dev/null 2>&1 || true   # their untagged cached layers
}

prune_older_builds() {
  local current ref id
  current=$(bah inspect --type image --format '{{.FromImageID}}' "$IMAGE_NAME:lock-$1" 2>/dev/null) || return 0
  while read -r ref id; do
    case "$ref" in "$IMAGE_NAME":*) [ "${id#sha256:}" = "$current" ] || bah rmi "$ref" >/dev/null 2>&1 || true ;; esac
  done < <(bah images --no-trunc --format '{{.Name}}:{{.Tag}} {{.ID}}' 2>/dev/null || true)
}

cmd_push() {
  local registry=${1:-}
  [ -n "$registry" ] || die "usage: make image-push REGISTRY=registry.example.org/team (pushes REGISTRY/tfx-taxi:<tag>)"
  case "$registry" in *[[:space:]]*|*://*) die "REGISTRY must look like host[:port]/path, without a scheme, got '$registry'" ;; esac
  local tag source target
  tag=$(commit_tag); source=$IMAGE_NAME:$tag; target=${registry%/}/tfx-taxi:$tag
  if [ -n "${DRY_RUN:-}" ]; then
    echo "buildah --root $STORE/storage --runroot $STORE/run push $source docker://$target"; return
  fi
  case "$tag" in *-dirty) die "uncommitted changes: commit first, so the pushed tag names what is in the image" ;; esac
  host_tools
  bah inspect --type image "$source" >/dev/null 2>&1 || die "no image $source: run 'make image' first"
  # Credentials are the user's: `buildah login REGISTRY` (or REGISTRY_AUTH_FILE) beforehand.
  bah push "$source" "docker://$target"
  say "pushed $target (compile with: make kfp KFP_IMAGE=$target ...)"
}

# A container of IMAGE, removed afterwards: buildah run's OPTIONS (--volume ...), then -- CMD.
cmd_run() {
  [ $# -ge 3 ] || die "usage: tools/image.sh run IMAGE [OPTIONS...] -- CMD [ARGS...]"
  local image=$1 options=(); shift
  while [ $# -gt 0 ] && [ "$1" != -- ]; do options+=("$1"); shift; done
  [ "${1:-}" = -- ] || die "run: no '--' before the command"
  shift
  host_tools
  RUN_CTR=$(bah from -q --pull=never "$image") || die "no image $image: run 'make image' first"
  trap 'bah rm "$RUN_CTR" >/dev/null 2>&1 || true' EXIT   # global: the trap runs after this function
  bah run "${options[@]}" "$RUN_CTR" -- "$@"
}

# The size buildah reports, then what makes it up (du inside a container of the image).
cmd_size() {
  local image=${1:-$IMAGE_NAME:$(commit_tag)}
  bah inspect --type image "$image" >/dev/null 2>&1 || die "no image $image: run 'make image' first"
  bah images --format '{{.Name}}:{{.Tag}}  {{.Size}}' "$image"
  cmd_run "$image" -- sh -c 'for d in / /usr /var /opt/venv /opt/tfx-taxi; do du -xsm "$d" 2>/dev/null; done;
    echo "largest in /opt/venv/lib/python3.13/site-packages (MB):";
    du -sm /opt/venv/lib/python3.13/site-packages/* | sort -rn | head -n 15'
}

case ${1:-} in
  size) shift; cmd_size "$@" ;;
  build) cmd_build ;;
  name) echo "$IMAGE_NAME:$(commit_tag)" ;;
  push) shift; cmd_push "$@" ;;
  run) shift; cmd_run "$@" ;;
  buildah) shift; bah "$@" ;;
  *) die "usage: tools/image.sh build | name | size [IMAGE] | push REGISTRY | run IMAGE [buildah-run options] -- CMD | buildah ARGS" ;;
esac
