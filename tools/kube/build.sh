#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kubelet,
# kube-proxy, kine, kwok and helm from the Go modules beside this script into a cache outside
# the repository, keyed by version; the real-node runtime (containerd, runc, CNI
# plugins, CoreDNS, kube-router, the registry, local-path-provisioner, metrics-server) into a directory of its own
# beside it, keyed by its versions (binaries.node_bin_dir() computes the same path).
# Whatever is already built is reused, so a warm run takes seconds.
# Without an argument it builds the control plane's binaries (all that `make run` and
# kwok nodes need); `node` also builds the real-node runtime and prints its directory;
# `all` (`make kube`, `make test`) builds both, helm (charts/vcportal) and the embedded host's
# ingress controller (ingress/: Caddy and our Ingress watcher; `ingress` builds only it and
# prints its directory, keyed by its sources); `runtime` only what the vcluster runtime image holds
# (kube-apiserver, kube-controller-manager, kine: Dockerfile.runtime); `conformance` the
# upstream e2e suite (e2e.test), ginkgo, and the programs of the suite's test images (agnhost,
# nonewprivs, sample-apiserver, and etcd as the sample API server's storage) for `make conformance`,
# and prints their directory. The last line
# printed is the control-plane binary directory, or with `node`, `ingress` or `conformance` theirs.
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

k8s_commands=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
binaries=("${k8s_commands[@]}" kine kwok)
node_bin="$cache_root/node-containerd$CONTAINERD_VERSION-runc$RUNC_VERSION-cni$CNI_PLUGINS_VERSION-coredns$COREDNS_VERSION-kube-router$KUBE_ROUTER_VERSION-registry$REGISTRY_VERSION/bin"
node_binaries=(containerd containerd-shim-runc-v2 runc cni/bridge cni/host-local cni/loopback cni/portmap coredns registry kube-router
  local-path-provisioner metrics-server)
want_node=false want_kwok=true want_helm=false want_ingress=false want_conformance=false
case "${1:-}" in
  node) want_node=true ;;
  all) want_node=true want_helm=true want_ingress=true ;;
  runtime) k8s_commands=(kube-apiserver kube-controller-manager); binaries=("${k8s_commands[@]}" kine); want_kwok=false ;;
  ingress) k8s_commands=() binaries=() want_kwok=false want_ingress=true ;;
  conformance) k8s_commands=() binaries=() want_kwok=false want_conformance=true ;;
  "") ;;
  *) echo "usage: $0 [node|all|runtime|ingress|conformance]" >&2; exit 2 ;;
esac
$want_node || node_binaries=()
mkdir -p "$node_bin/cni"
# helm lives in a directory keyed by its own version; the control-plane directory links to
# it (`$(make -s kube | tail -n 1)/helm`), so a new helm needs no control-plane rebuild.
helm_bin="$cache_root/helm$HELM_VERSION"
# The e2e suite and its test images' programs, from the control plane's Kubernetes module.
conformance_bin="$cache_root/conformance-$KUBE_VERSION"
conformance_binaries=(e2e.test ginkgo agnhost nonewprivs sample-apiserver etcd)
$want_conformance || conformance_binaries=()
# Our own program: a directory per version of its sources.
ingress_bin="$cache_root/ingress-$(cat "$here"/ingress/go.mod "$here"/ingress/go.sum "$here"/ingress/*.go | sha256sum | cut -c1-12)"

# Cold-build times on 2 cores, for the progress lines of a first `make run`. The
# first binary of a module also compiles most of the code the others share.
usual_time() {
  case $1 in
    kube-apiserver) echo "~5 min" ;;
    kube-controller-manager) echo "~4 min" ;;
    coredns) echo "~8 min" ;;  # its plugins pull in most cloud SDKs
    e2e.test) echo "~8 min" ;;  # every SIG's tests, on top of the control plane's packages
    kine|containerd|registry|kube-router|etcd|kubelet|local-path-provisioner|metrics-server|helm|vcportal-ingress) echo "~2-3 min" ;;  # kine with cgo: the C SQLite
    *) echo "~1 min" ;;
  esac
}
to_build=0
for name in "${binaries[@]}"; do [ -x "$bin/$name" ] || to_build=$((to_build + 1)); done
for name in "${node_binaries[@]}"; do [ -x "$node_bin/$name" ] || to_build=$((to_build + 1)); done
$want_helm && { [ -x "$helm_bin/helm" ] || to_build=$((to_build + 1)); }
$want_ingress && { [ -x "$ingress_bin/vcportal-ingress" ] || to_build=$((to_build + 1)); }
for name in "${conformance_binaries[@]}"; do [ -x "$conformance_bin/$name" ] || to_build=$((to_build + 1)); done
if [ "$to_build" -gt 0 ]; then
  log "$to_build of $(( ${#binaries[@]} + ${#node_binaries[@]} + ${#conformance_binaries[@]} + $($want_helm && echo 1 || echo 0) + $($want_ingress && echo 1 || echo 0) )) binaries to build into $cache_root (about 12 minutes cold on 2 cores for the control plane$($want_node && echo ", 20-40 more for the real-node runtime"); once)"
fi
built=0

build() { # build NAME MODULE_DIR PACKAGE CGO LDFLAGS [OUT_DIR [TAGS [GO_COMMAND]]]
  local name=$1 dir=$2 pkg=$3 cgo=$4 ldflags=$5 out=${6:-$bin} tags=${7:-} command=${8:-build}
  if [ -x "$out/$name" ]; then return; fi
  built=$((built + 1))
  log "building $name ($built/$to_build, usually $(usual_time "$name"))…"
  local start=$SECONDS
  # (`go test -c` compiles a package's tests into one binary: the e2e suite is one)
  (cd "$here/$dir" && CGO_ENABLED=$cgo go $command -p "$parallel" -trimpath -tags "$tags" -ldflags "$ldflags" \
    -o "$out/$name.tmp" "$pkg")
  mv "$out/$name.tmp" "$out/$name"
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
if $want_kwok; then
  build kwok kwok sigs.k8s.io/kwok/cmd/kwok 0 "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}"
fi

if $want_helm; then
  mkdir -p "$helm_bin"
  build helm helm helm.sh/helm/v4/cmd/helm 0 \
    "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean" "$helm_bin"
  ln -sfn "$helm_bin/helm" "$bin/helm"
fi

if $want_ingress; then
  mkdir -p "$ingress_bin"
  build vcportal-ingress ingress . 0 "-s -w" "$ingress_bin"
fi

if $want_conformance; then
  mkdir -p "$conformance_bin"
  build e2e.test k8s k8s.io/kubernetes/test/e2e 0 "$ldf" "$conformance_bin" "" "test -c -vet=off"
  build ginkgo k8s github.com/onsi/ginkgo/v2/ginkgo 0 "-s -w" "$conformance_bin"
  build agnhost k8s k8s.io/kubernetes/test/images/agnhost 0 "-s -w" "$conformance_bin"
  build nonewprivs k8s k8s.io/kubernetes/test/images/nonewprivs 0 "-s -w" "$conformance_bin"
  build sample-apiserver k8s k8s.io/sample-apiserver 0 "$ldf" "$conformance_bin"
  build etcd etcd go.etcd.io/etcd/server/v3 0 "-s -w" "$conformance_bin"
fi

# kwok needs its stage definitions; they ship inside its module.
if $want_kwok && [ ! -s "$bin/kwok-stages.yaml" ]; then
  stages="$(cd "$here/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    echo "---"; cat "$stages/$f"
  done > "$bin/kwok-stages.yaml.tmp"
  mv "$bin/kwok-stages.yaml.tmp" "$bin/kwok-stages.yaml"
fi

if $want_node; then
  # The real-node runtime. runc needs cgo for its nsenter C code and links libseccomp
  # (Debian's libseccomp-dev), so pods may ask for the RuntimeDefault seccomp profile.
  # Debian packages: libseccomp for the build, iptables/nftables/conntrack for the node.
  "$here/../../scripts/services.sh" install kube-build node
  ctr_ldflags="-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION"
  build containerd containerd github.com/containerd/containerd/v2/cmd/containerd 0 "$ctr_ldflags" "$node_bin" no_btrfs
  build containerd-shim-runc-v2 containerd github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 0 "$ctr_ldflags" "$node_bin"
  build runc runc github.com/opencontainers/runc 1 "-s -w -X main.version=${RUNC_VERSION#v}" "$node_bin" seccomp
  for p in main/bridge ipam/host-local main/loopback meta/portmap; do
    build "${p#*/}" cni "github.com/containernetworking/plugins/plugins/$p" 0 \
      "-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$CNI_PLUGINS_VERSION" "$node_bin/cni"
  done
  build coredns coredns github.com/coredns/coredns 0 "-s -w" "$node_bin"
  build registry registry github.com/distribution/distribution/v3/cmd/registry 0 \
    "-s -w -X github.com/distribution/distribution/v3/version.version=$REGISTRY_VERSION" "$node_bin"
  build kube-router kube-router github.com/cloudnativelabs/kube-router/v2/cmd/kube-router 0 \
    "-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION" "$node_bin"
  build local-path-provisioner local-path-provisioner github.com/rancher/local-path-provisioner 0 \
    "-s -w -X main.VERSION=$LOCAL_PATH_PROVISIONER_VERSION" "$node_bin"
  build metrics-server metrics-server sigs.k8s.io/metrics-server/cmd/metrics-server 0 \
    "-s -w -X k8s.io/client-go/pkg/version.gitVersion=$METRICS_SERVER_VERSION" "$node_bin"
fi
case "${1:-}" in
  node) echo "$node_bin" ;;
  ingress) echo "$ingress_bin" ;;
  conformance) echo "$conformance_bin" ;;
  *) echo "$bin" ;;
esac
