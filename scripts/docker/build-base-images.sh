#!/usr/bin/env bash
# Build the base images that CI and air-gapped hosts use instead of pulling from a registry:
#
#   tinychat/debian-base:local   debootstrap'd Debian bookworm (minbase) + the host's CA bundle
#   tinychat/python-base:local   + python3, python3-venv, pip        (PYTHON_IMAGE)
#   tinychat/node-base:local     + nodejs, npm                       (NODE_IMAGE)
#   tinychat/redis:local         + redis-server, run as user redis   (REDIS_IMAGE)
#
# The Debian mirror is the one this machine's apt uses. The host's CA bundle is copied in so
# that pip, npm and apt inside builds reach the registries through the same TLS setup as the
# host. An image that already exists with the current recipe version is not rebuilt
# (FORCE=1 rebuilds all).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
RECIPE=3  # bump when the recipe changes, so stale local images are rebuilt
SUITE=bookworm
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
FORCE=${FORCE:-0}

DEBIAN_BASE=tinychat/debian-base:local
PYTHON_BASE=tinychat/python-base:local
NODE_BASE=tinychat/node-base:local
REDIS_BASE=tinychat/redis:local

# The first non-security mirror in the machine's apt sources (deb822 or one-line format).
debian_mirror() {
    local uri=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        uri=$(awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}' /etc/apt/sources.list.d/debian.sources \
            | grep -v -- '-security' | head -n 1 || true)
    fi
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
        uri=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' \
            /etc/apt/sources.list || true)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

is_current() {
    [ "$FORCE" != 1 ] || return 1
    [ "$(docker image inspect -f '{{ index .Config.Labels "tinychat.base.recipe" }}' "$1" 2>/dev/null)" = "$RECIPE" ]
}

build_debian_base() {
    if is_current "$DEBIAN_BASE"; then
        echo "base: $DEBIAN_BASE is up to date"
        return
    fi
    local mirror rootfs
    mirror=$(debian_mirror)
    rootfs=$(mktemp -d /tmp/tinychat-rootfs.XXXXXX)
    # shellcheck disable=SC2064  # expand now: the path is fixed
    trap "rm -rf '$rootfs'" RETURN
    echo "base: debootstrap $SUITE from $mirror (a few minutes)"
    debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$rootfs" "$mirror" \
        >/tmp/tinychat-debootstrap.log 2>&1 || {
        tail -n 30 /tmp/tinychat-debootstrap.log >&2
        exit 1
    }
    cp "$CA_BUNDLE" "$rootfs/etc/ssl/certs/ca-certificates.crt"
    echo "deb $mirror $SUITE main" >"$rootfs/etc/apt/sources.list"
    # Small and cache-free: no apt lists or archives, no docs.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
    tar -C "$rootfs" -c . | docker import \
        --change "LABEL tinychat.base.recipe=$RECIPE" \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
        --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
        --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
        --change 'CMD ["/bin/bash"]' \
        - "$DEBIAN_BASE" >/dev/null
    echo "base: built $DEBIAN_BASE"
}

build_from_recipe() {
    local tag=$1 dockerfile=$2
    if is_current "$tag"; then
        echo "base: $tag is up to date"
        return
    fi
    echo "base: building $tag"
    docker build -q --label "tinychat.base.recipe=$RECIPE" --build-arg "DEBIAN_IMAGE=$DEBIAN_BASE" \
        -t "$tag" -f "$HERE/base/$dockerfile" "$HERE/base" >/dev/null
    echo "base: built $tag"
}

command -v debootstrap >/dev/null || { echo "base: debootstrap is not installed" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "base: no Docker engine; run scripts/docker/start-dockerd.sh" >&2; exit 1; }

build_debian_base
build_from_recipe "$PYTHON_BASE" python.Dockerfile
build_from_recipe "$NODE_BASE" node.Dockerfile
build_from_recipe "$REDIS_BASE" redis.Dockerfile
docker image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep -E '^tinychat/(debian-base|python-base|node-base|redis):local'
