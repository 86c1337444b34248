#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kine and
# kwok from the Go modules beside this script into a cache outside the repository,
# keyed by version. Whatever is already built is reused, so a warm run takes seconds.
# The last line printed is the binary directory.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache_root="${VCPORTAL_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vcportal/kube}"
bin="$cache_root/$KUBE_VERSION-kine$KINE_VERSION-kwok$KWOK_VERSION/bin"
mkdir -p "$bin"

export GOTOOLCHAIN=local GOFLAGS=-mod=mod
parallel="${VCPORTAL_GO_BUILD_P:-2}"

log() { echo "kube: $*" >&2; }

k8s_commands=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
binaries=("${k8s_commands[@]}" kine kwok)

# Cold-build times on 2 cores, for the progress lines of a first `make run`. The
# first binary also compiles most of the code the others share.
usual_time() {
  case $1 in
    kube-apiserver) echo "~5 min" ;;
    kube-controller-manager) echo "~4 min" ;;
    kine) echo "~2 min" ;;  # with cgo: the C SQLite
    *) echo "~1 min" ;;
  esac
}
to_build=0
for name in "${binaries[@]}"; do [ -x "$bin/$name" ] || to_build=$((to_build + 1)); done
if [ "$to_build" -gt 0 ]; then
  log "$to_build of ${#binaries[@]} binaries to build into $bin (about 12 minutes cold on 2 cores; once)"
fi
built=0

build() { # build NAME MODULE_DIR PACKAGE CGO LDFLAGS
  local name=$1 dir=$2 pkg=$3 cgo=$4 ldflags=$5
  if [ -x "$bin/$name" ]; then return; fi
  built=$((built + 1))
  log "building $name ($built/$to_build, usually $(usual_time "$name"))…"
  local start=$SECONDS
  (cd "$here/$dir" && CGO_ENABLED=$cgo go build -p "$parallel" -trimpath -ldflags "$ldflags" -o "$bin/$name.tmp" "$pkg")
  mv "$bin/$name.tmp" "$bin/$name"
  log "built $name in $((SECONDS - start))s"
}

kube_ldflags() {
  local minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  local flags="-s -w" kv
  for kv in "gitVersion=$KUBE_VERSION" gitMajor=1 "gitMinor=$minor" gitTreeState=clean \
            "buildDate=1970-01-01T00:00:00Z"; do
    flags="$flags -X k8s.io/component-base/version.$kv -X k8s.io/client-go/pkg/version.$kv"
  done
  echo "$flags"
}

ldf="$(kube_ldflags)"
for c in "${k8s_commands[@]}"; do
  build "$c" k8s "k8s.io/kubernetes/cmd/$c" 0 "$ldf"
done
# kine with cgo uses the C SQLite driver, as upstream ships it; without a C compiler
# it falls back to the pure-Go driver.
kine_cgo=0; command -v gcc >/dev/null && kine_cgo=1
build kine kine github.com/k3s-io/kine "$kine_cgo" \
  "-s -w -X github.com/k3s-io/kine/pkg/version.Version=$KINE_VERSION -X github.com/k3s-io/kine/pkg/version.GitCommit=release"
build kwok kwok sigs.k8s.io/kwok/cmd/kwok 0 "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}"

# kwok needs its stage definitions; they ship inside its module.
stages="$(cd "$here/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage"
if [ ! -s "$bin/kwok-stages.yaml" ]; then
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    echo "---"; cat "$stages/$f"
  done > "$bin/kwok-stages.yaml.tmp"
  mv "$bin/kwok-stages.yaml.tmp" "$bin/kwok-stages.yaml"
fi
echo "$bin"
