#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds every zgserve image with podman, tagged as docker-compose.yml and the dev overlay name
# them (zgserve/<target>:dev), and prints each image's size and build time.
#
#   scripts/build_images.sh                  # bases as needed, then every target
#   scripts/build_images.sh gateway prover   # only these targets
#   scripts/build_images.sh --source-digest  # print the digest of the build's sources
#
# Base images: the Dockerfile's defaults (python:3.11-slim-bookworm, node:20-bookworm-slim)
# where an image registry answers; where none does (this machine), local bases from Debian's
# packages: `debootstrap --variant=minbase bookworm` imported into podman, then Python 3.11 and
# Node.js 18 on it (deploy/podman/*.Containerfile). Bases are made once and kept: delete them
# (`podman rmi localhost/zgserve-base/...`) or pass ZG_BASES=rebuild to make them again.
# ZG_BASES=local|registry forces one kind.
#
# podman runs as deploy/podman/containers.conf says (runc, cgroupfs, no default ulimits)
# unless CONTAINERS_CONF names another file, and builds on the host network. Needs (Debian):
# apt-get install podman runc debootstrap. Run it with `nice` on a shared machine.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(gateway billing prover chain-indexer sample-backend devnet zk-keys)
TAG=${ZG_IMAGE_TAG:-dev}
BASES=${ZG_BASES:-auto}
MINBASE=localhost/zgserve-base/debian:bookworm-minbase
LOCAL_PYTHON=localhost/zgserve-base/python:3.11-bookworm
LOCAL_NODE=localhost/zgserve-base/node:18-bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
REPORT=${ZG_IMAGE_REPORT:-var/images.tsv}
LOGS=var/logs/images

# The sources an image is built from (the build context's allowlist, .dockerignore, and the
# Dockerfile), as one sha256: every image carries it as the label dev.zgserve.source, so a test
# can tell images built from this tree from stale ones.
CONTEXT=(Dockerfile .dockerignore pyproject.toml setup.py README.md package.json package-lock.json
  requirements/runtime.txt requirements/prover.txt shared services sdk circuits
  scripts/zk_setup.py deploy/compose/deploy_contracts.py deploy/compose/make_secrets.py)
source_digest() {
  git ls-files --cached --others --exclude-standard -- "${CONTEXT[@]}" | LC_ALL=C sort \
    | while IFS= read -r f; do [ -f "$f" ] && sha256sum "$f"; done | sha256sum | cut -c1-64
}
if [ "${1:-}" = --source-digest ]; then source_digest; exit 0; fi

export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/deploy/podman/containers.conf}
step() { printf '\n==> %s\n' "$*"; }
need() { command -v "$1" >/dev/null 2>&1 || { echo "error: $1 is required ($2)" >&2; exit 1; }; }
need podman "apt-get install podman runc"
exists() { podman image exists "$1"; }
default_arg() { sed -n "s/^ARG $1=//p" Dockerfile; }

BUILD_FLAGS=(--network=host --layers)
# The images' builds trust what this host trusts: its CA bundle (a TLS-intercepting egress
# proxy's CA, say) is mounted read-only into their RUN steps for pip and npm (the bases bring
# ca-certificates, so no step reinstalls it), and never lands in an image.
HOST_CA=()
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  HOST_CA=(--volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
fi
[ $# -gt 0 ] && TARGETS=("$@")
mkdir -p "$LOGS" "$(dirname "$REPORT")"

# Debian's minimal base, slimmed as the official slim images are: no apt lists, manuals,
# translations or documentation other than the copyright files (dpkg leaves them out of later
# installs too), with the security updates applied.
make_minbase() {
  need debootstrap "apt-get install debootstrap"
  local root
  root=$(mktemp -d /var/tmp/zgserve-minbase.XXXXXX)
  step "debootstrap --variant=minbase bookworm (once; kept as $MINBASE)"
  if ! debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$LOGS/debootstrap.log" 2>&1; then
    tail -20 "$LOGS/debootstrap.log" >&2
    rm -rf "$root"
    return 1
  fi
  cat >"$root/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $SECURITY_MIRROR bookworm-security main
EOF
  cat >"$root/etc/dpkg/dpkg.cfg.d/zgserve-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  cat >"$root/etc/apt/apt.conf.d/zgserve-slim" <<'EOF'
APT::Install-Recommends "false";
Acquire::Languages "none";
EOF
  chroot "$root" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get upgrade -y -qq' >/dev/null
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$root"/usr/share/{man,info}/* "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  tar -C "$root" --numeric-owner -c . | podman import --quiet - "$MINBASE" >/dev/null
  rm -rf "$root"
}

local_base() { # image containerfile
  if [ "$BASES" = rebuild ] || ! exists "$1"; then
    step "base image $1 (deploy/podman/$2)"
    podman build "${BUILD_FLAGS[@]}" --build-arg BASE="$MINBASE" \
      -f "deploy/podman/$2" -t "$1" deploy/podman >"$LOGS/base-$2.log" 2>&1 \
      || { tail -30 "$LOGS/base-$2.log" >&2; exit 1; }
  fi
}

registry_reachable() {
  exists "$1" || podman pull --quiet "$1" >/dev/null 2>&1
}

python_image=$(default_arg PYTHON_IMAGE)
node_image=$(default_arg NODE_IMAGE)
if [ "$BASES" = auto ]; then
  if registry_reachable "$python_image" && registry_reachable "$node_image"; then
    BASES=registry
  else
    echo "note: no image registry answers: building local bases from Debian's packages" >&2
    BASES=local
  fi
fi
if [ "$BASES" != registry ]; then
  if [ "$BASES" = rebuild ] || ! exists "$MINBASE"; then make_minbase; fi
  local_base "$LOCAL_PYTHON" python.Containerfile
  local_base "$LOCAL_NODE" node.Containerfile
  python_image=$LOCAL_PYTHON node_image=$LOCAL_NODE
fi
BUILD_FLAGS+=(--build-arg "PYTHON_IMAGE=$python_image" --build-arg "NODE_IMAGE=$node_image")
digest=$(source_digest)
EMPTY=$(mktemp -d)
trap 'rmdir "$EMPTY"' EXIT

printf 'image\tsize_bytes\tbuild_s\tbase\n' >"$REPORT"
for target in "${TARGETS[@]}"; do
  image="zgserve/$target:$TAG"
  step "$image (--target $target; log in $LOGS/$target.log)"
  start=$(date +%s)
  if ! podman build "${BUILD_FLAGS[@]}" "${HOST_CA[@]}" --target "$target" -t "$image" -f Dockerfile . \
    >"$LOGS/$target.log" 2>&1; then
    tail -30 "$LOGS/$target.log" >&2
    echo "error: building $image failed (log: $LOGS/$target.log)" >&2
    exit 1
  fi
  # The label in a step of its own: a --label on a build whose steps all come from the cache
  # is not applied, and the image would keep the label of the sources it was first built from.
  printf 'FROM %s\nLABEL dev.zgserve.source="%s"\n' "$image" "$digest" \
    | podman build --quiet -t "$image" -f - "$EMPTY" >/dev/null
  size=$(podman image inspect --format '{{.Size}}' "$image")
  printf '%s\t%s\t%s\t%s\n' "$image" "$size" "$(($(date +%s) - start))" "$python_image" >>"$REPORT"
done

step "images (also in $REPORT)"
column -t -s $'\t' "$REPORT"
