#!/usr/bin/env bash
# Builds the images that real nodes pull, offline, and pushes them to a local OCI
# registry (distribution, built by `make kube`) on 127.0.0.1:$VCPORTAL_REGISTRY_PORT:
#   busybox  Debian's busybox-static with its applets: shell, nc, wget, nslookup, httpd
#   pause    the pod sandbox image containerd starts first in every pod: busybox's
#            shell waiting for a signal (Kubernetes' own pause is C, not a Go module)
#   coredns  the CoreDNS binary built by `make kube`
# Images are assembled with umoci (an OCI layout, one layer each) and pushed with
# skopeo. A tag is the upstream version plus a hash of everything that goes into the
# image, so an image already in the registry is never rebuilt. The registry keeps its
# data outside the repository and is started here when it is not running.
# The last lines printed are the image references, one a line; the same lines go to
# $cache/images/refs, where localkube (localkube/images.py) reads them.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$here/../.."
# shellcheck source=../kube/versions.env
source "$root/tools/kube/versions.env"

cache="${VCPORTAL_IMAGES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vcportal}"
registry_dir="$cache/registry"
layout="$cache/images/oci"
port="${VCPORTAL_REGISTRY_PORT:-5390}"
registry="127.0.0.1:$port"

log() { echo "images: $*" >&2; }

"$root/scripts/services.sh" install images
node_bin="$("$root/tools/kube/build.sh" node | tail -n 1)"

registry_up() { curl -fsS -o /dev/null "http://$registry/v2/"; }

start_registry() {
  registry_up 2>/dev/null && return
  mkdir -p "$registry_dir/data" && chmod 700 "$registry_dir"
  cat >"$registry_dir/config.yml" <<EOF
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $registry_dir/data}
  delete: {enabled: true}
http: {addr: "$registry"}
EOF
  log "starting the registry on $registry (data in $registry_dir)"
  OTEL_TRACES_EXPORTER=none setsid "$node_bin/registry" serve "$registry_dir/config.yml" \
    >>"$registry_dir/registry.log" 2>&1 </dev/null &
  echo $! >"$registry_dir/registry.pid"
  for _ in $(seq 100); do registry_up 2>/dev/null && return; sleep 0.1; done
  log "the registry did not answer; see $registry_dir/registry.log"; exit 1
}

in_registry() { # in_registry NAME TAG
  curl -fsS -o /dev/null -H "Accept: application/vnd.oci.image.manifest.v1+json" \
    "http://$registry/v2/$1/manifests/$2" 2>/dev/null
}

content_hash() { # content_hash FILE...: what an image is made of, and how
  sha256sum "$@" "$here/build.sh" | sha256sum | cut -c1-12
}

publish() { # publish NAME TAG ROOTFS_DIR UMOCI_CONFIG_ARGS...
  local name=$1 tag=$2 rootfs=$3; shift 3
  local ref="$layout:$name-$tag"
  [ -d "$layout" ] || umoci init --layout "$layout"
  umoci rm --image "$ref" 2>/dev/null || true
  umoci new --image "$ref"
  umoci insert --image "$ref" --history.created_by "tools/images/build.sh" "$rootfs" /
  umoci config --image "$ref" --no-history --config.workingdir / "$@"
  skopeo copy --quiet --dest-tls-verify=false "oci:$ref" "docker://$registry/$name:$tag"
  umoci rm --image "$ref"
  umoci gc --layout "$layout"
}

base_files() { # base_files ROOTFS: the few files a program expects in /etc and /tmp
  chmod 755 "$1"  # mktemp made it 0700; it becomes the image's /
  mkdir -p "$1/etc" "$1/tmp" && chmod 1777 "$1/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$1/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$1/etc/group"
}

busybox_rootfs() { # busybox_rootfs DIR: busybox and a link per applet in /bin
  local applet
  mkdir -p "$1/bin"
  cp /bin/busybox "$1/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$1/bin/$applet"
  done
  base_files "$1"
}

busybox_image() { # busybox_image NAME UMOCI_CONFIG_ARGS...
  local name=$1 version tag; shift
  version="$(/bin/busybox | head -n 1 | sed -E 's/^BusyBox v([0-9.]+).*/\1/')"
  tag="$version-$(content_hash /bin/busybox)"
  if ! in_registry "$name" "$tag"; then
    log "building $name:$tag"
    local rootfs; rootfs="$(mktemp -d)"
    busybox_rootfs "$rootfs"
    publish "$name" "$tag" "$rootfs" --config.env PATH=/bin "$@"
    rm -rf "$rootfs"
  fi
  echo "$registry/$name:$tag"
}

coredns_image() {
  local src="$node_bin/coredns" tag
  tag="${COREDNS_VERSION#v}-$(content_hash "$src")"
  if ! in_registry coredns "$tag"; then
    log "building coredns:$tag"
    local rootfs; rootfs="$(mktemp -d)"
    cp "$src" "$rootfs/coredns"
    base_files "$rootfs"
    publish coredns "$tag" "$rootfs" --config.entrypoint /coredns --config.exposedports 53/udp \
      --config.exposedports 53/tcp
    rm -rf "$rootfs"
  fi
  echo "$registry/coredns:$tag"
}

start_registry
refs="$(
  busybox_image busybox --config.cmd /bin/sh
  busybox_image pause --config.entrypoint /bin/sh --config.entrypoint -c \
    --config.entrypoint 'trap "exit 0" TERM INT; while :; do sleep 3600 & wait $!; done'
  coredns_image
)"
mkdir -p "$cache/images"
echo "$refs" >"$cache/images/refs.tmp" && mv "$cache/images/refs.tmp" "$cache/images/refs"
echo "$refs"
