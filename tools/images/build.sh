#!/usr/bin/env bash
# Builds the images that real nodes pull, offline, and pushes them to a local OCI
# registry (distribution, built by `make kube`) on 127.0.0.1:$VCPORTAL_REGISTRY_PORT:
#   busybox  Debian's busybox-static with its applets: shell, nc, wget, nslookup, httpd
#   pause    the pod sandbox image containerd starts first in every pod: busybox's
#            shell waiting for a signal (Kubernetes' own pause is C, not a Go module)
#   coredns  the CoreDNS binary built by `make kube`
#   local-path-provisioner  the embedded host's dynamic volume provisioner, built by `make kube`
#   metrics-server  the embedded host's metrics.k8s.io, built by `make kube`
#   ingress  the embedded host's ingress controller (tools/kube/ingress), built by `make kube`
#   vcluster-runtime  a vcluster's control plane and syncer in one image: kine,
#            kube-apiserver and kube-controller-manager as `make kube` built them, this
#            machine's Python with a trimmed stdlib, PyYAML, urllib3 and the syncer
#            package (Dockerfile.runtime builds the same for a real registry)
#   vcportal the portal (web and gateway, Celery worker and beat, migrations): the same
#            trimmed Python, the distributions in tools/images/requirements.lock, the
#            project in /app with its static files collected (Dockerfile: the same for
#            a real registry)
#   postgresql, redis  the chart's bundled database and broker for a trial: Debian's
#            packages of this machine, with busybox's shell for PostgreSQL's first start
# Images are assembled with umoci (an OCI layout, one layer each) and pushed with
# skopeo. A tag is the upstream version plus a hash of everything that goes into the
# image, so an image already in the registry is never rebuilt. The registry keeps its
# data outside the repository and is started here when it is not running.
# The last lines printed are the image references, one a line; the same lines go to
# $cache/images/refs, where controlplane/images.py reads them. With the argument
# `conformance` it also builds the upstream e2e suite's test images (`make conformance`).
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

"$root/scripts/services.sh" install images postgres redis
node_bin="$("$root/tools/kube/build.sh" node | tail -n 1)"
kube_bin="$("$root/tools/kube/build.sh" | tail -n 1)"
ingress_bin="$("$root/tools/kube/build.sh" ingress | tail -n 1)"

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

local_path_image() {
  local src="$node_bin/local-path-provisioner" tag
  tag="${LOCAL_PATH_PROVISIONER_VERSION#v}-$(content_hash "$src")"
  if ! in_registry local-path-provisioner "$tag"; then
    log "building local-path-provisioner:$tag"
    local rootfs; rootfs="$(mktemp -d)"
    mkdir -p "$rootfs/usr/local/bin"
    cp "$src" "$rootfs/usr/local/bin/local-path-provisioner"
    base_files "$rootfs"
    publish local-path-provisioner "$tag" "$rootfs" --config.entrypoint /usr/local/bin/local-path-provisioner
    rm -rf "$rootfs"
  fi
  echo "$registry/local-path-provisioner:$tag"
}

# The vcluster runtime's Python: this machine's interpreter (the one .venv is made
# from), its standard library without what a server never imports, and PyYAML, urllib3
# and prometheus_client from .venv: all the syncer needs, with cryptography (and the
# cffi backend it loads) for the keys of pods' podCertificate volumes.
python_home="$("$root/.venv/bin/python" -c 'import sys; print(sys.base_prefix)')"
python_stdlib="$python_home/lib/python3.11"
site_packages="$root/.venv/lib/python3.11/site-packages"
# (tar patterns: they match at any depth, so the test packages inside the stdlib go too)
stdlib_excluded=(test tests idlelib tkinter turtledemo turtle.py ensurepip lib2to3 distutils venv pydoc_data
  site-packages "config-3.11-*" "lib-dynload/_tkinter.*" "lib-dynload/_test*"
  "lib-dynload/xxlimited*" "lib-dynload/_ctypes_test.*" "lib-dynload/readline.*" "lib-dynload/_curses*")
runtime_user=65532
runtime_packages=(yaml _yaml urllib3 prometheus_client cryptography _cffi_backend.cpython-311-x86_64-linux-gnu.so)

runtime_inputs() { # what the vcluster runtime image is made of, in a stable order; the
  # interpreter stands for its standard library and the system libraries it was built with
  printf '%s\n' "$kube_bin/kine" "$kube_bin/kube-apiserver" "$kube_bin/kube-controller-manager" \
    "$python_home/bin/python3.11" "$python_home/lib/libpython3.11.so.1.0"
  (cd "$root" && find syncer -name '*.py' | LC_ALL=C sort | sed "s|^|$root/|")
  (cd "$site_packages" && find "${runtime_packages[@]}" -type f ! -path '*__pycache__*' | LC_ALL=C sort \
    | sed "s|^|$site_packages/|")
}

copy_shared_libraries() { # copy_shared_libraries ROOTFS: what its ELF files load, as ldd finds it
  local rootfs=$1 lib
  # (ldd fails on static programs, busybox's or Go's: they need nothing)
  { find "$rootfs" -type f \( -name '*.so*' -o -perm -u+x \) -exec ldd {} + 2>/dev/null || true; } \
    | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\/lib64\// {print $1}' | sort -u \
    | while read -r lib; do
        case $lib in
          "$rootfs"/*) ;;  # a wheel's own libraries (name.libs/), found through its RPATH
          /lib64/*) mkdir -p "$rootfs/lib64" && cp -L "$lib" "$rootfs/lib64/" ;;
          # Debian's loader searches /usr/lib/<triplet> without a cache; libpython lands there too.
          *) cp -L "$lib" "$rootfs/usr/lib/x86_64-linux-gnu/" ;;
        esac
      done
}

python_rootfs() { # python_rootfs DIR: the trimmed interpreter, its site-packages still empty
  local rootfs=$1 lib=$1/usr/local/lib/python3.11 pattern
  local excludes=(--exclude=__pycache__); for pattern in "${stdlib_excluded[@]}"; do excludes+=(--exclude="$pattern"); done
  mkdir -p "$rootfs/usr/local/bin" "$rootfs/usr/lib/x86_64-linux-gnu" "$lib/site-packages" "$rootfs/app"
  cp "$python_home/bin/python3.11" "$rootfs/usr/local/bin/python3"
  tar -C "$python_stdlib" -cf - "${excludes[@]}" . | tar -C "$lib" -xf -
  base_files "$rootfs"
  nonroot_user "$rootfs"
}

nonroot_user() { # nonroot_user ROOTFS: the user the images run as
  echo "nonroot:x:$runtime_user:$runtime_user:nonroot:/nonexistent:/sbin/nologin" >>"$1/etc/passwd"
  echo "nonroot:x:$runtime_user:" >>"$1/etc/group"
}

finish_python() { # finish_python ROOTFS: libraries, stripped, compiled
  local rootfs=$1 lib=$1/usr/local/lib/python3.11
  copy_shared_libraries "$rootfs"
  # pyenv builds Python with debug symbols: three quarters of libpython's size.
  strip --strip-unneeded "$rootfs/usr/local/bin/python3" "$rootfs/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0" \
    "$lib"/lib-dynload/*.so
  # Bytecode now, checked against nothing at run time: the root filesystem is read-only
  # and its sources never change, so start-up compiles nothing.
  "$python_home/bin/python3.11" -m compileall -q -j 0 --invalidation-mode unchecked-hash \
    -s "$rootfs" -p / "$lib" "$rootfs/app"
}

runtime_rootfs() { # runtime_rootfs DIR
  local rootfs=$1
  python_rootfs "$rootfs"
  cp "$kube_bin/kine" "$kube_bin/kube-apiserver" "$kube_bin/kube-controller-manager" "$rootfs/usr/local/bin/"
  tar -C "$site_packages" -cf - --exclude=__pycache__ "${runtime_packages[@]}" \
    | tar -C "$rootfs/usr/local/lib/python3.11/site-packages" -xf -
  (cd "$root" && find syncer -name '*.py' -exec cp --parents {} "$rootfs/app/" \;)
  finish_python "$rootfs"
  mkdir -p "$rootfs/var/lib/vcluster" && chown "$runtime_user:$runtime_user" "$rootfs/var/lib/vcluster"
}

runtime_image() {
  local tag inputs
  mapfile -t inputs < <(runtime_inputs)
  tag="${KUBE_VERSION#v}-$(content_hash "${inputs[@]}")"
  if ! in_registry vcluster-runtime "$tag"; then
    log "building vcluster-runtime:$tag"
    local rootfs; rootfs="$(mktemp -d)"
    runtime_rootfs "$rootfs"
    publish vcluster-runtime "$tag" "$rootfs" --config.user "$runtime_user:$runtime_user" \
      --config.env PATH=/usr/local/bin:/usr/bin:/bin --config.env PYTHONPATH=/app \
      --config.env PYTHONDONTWRITEBYTECODE=1
    rm -rf "$rootfs"
  fi
  echo "$registry/vcluster-runtime:$tag"
}

# The portal: what Dockerfile installs, from the same lock, in the same places.
lock="$root/tools/images/requirements.lock"
project_paths=(manage.py templates static portal accounts vclusters provisioning gitops gateway controlplane localkube syncer)
python_version="$("$python_home/bin/python3.11" -c 'import platform; print(platform.python_version())')"

vcportal_inputs() {
  printf '%s\n' "$lock" "$python_home/bin/python3.11" "$python_home/lib/libpython3.11.so.1.0"
  (cd "$root" && find "${project_paths[@]}" -type f ! -path '*__pycache__*' | LC_ALL=C sort | sed "s|^|$root/|")
}

vcportal_rootfs() { # vcportal_rootfs DIR
  local rootfs=$1 site=$1/usr/local/lib/python3.11/site-packages
  python_rootfs "$rootfs"
  "$root/.venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --no-compile --target "$site" -r "$lock"
  rm -rf "$site/bin"  # console scripts naming .venv's interpreter: the image runs `python3 -m`
  (cd "$root" && tar -cf - --exclude=__pycache__ "${project_paths[@]}") | tar -C "$rootfs/app" -xf -
  # Collected by .venv, whose packages are the lock's (tests/images checks it), in the
  # image's /app, so the manifest names what the image serves.
  (cd "$rootfs/app" && DJANGO_SECRET_KEY=build FIELD_ENCRYPTION_KEYS="$(head -c 32 /dev/urandom | base64 | tr +/ -_)" \
    VCPORTAL_VAR_DIR="$(mktemp -d)" "$root/.venv/bin/python" manage.py collectstatic --noinput -v 0)
  finish_python "$rootfs"
  mkdir -p "$rootfs/var/lib/vcportal" && chown "$runtime_user:$runtime_user" "$rootfs/var/lib/vcportal"
}

vcportal_image() {
  local tag inputs version
  version="$(sed -nE 's/^version = "(.*)"/\1/p' "$root/pyproject.toml")"
  mapfile -t inputs < <(vcportal_inputs)
  tag="$version-$(content_hash "${inputs[@]}")"
  if ! in_registry vcportal "$tag"; then
    log "building vcportal:$tag"
    local rootfs; rootfs="$(mktemp -d)"
    vcportal_rootfs "$rootfs"
    publish vcportal "$tag" "$rootfs" --config.user "$runtime_user:$runtime_user" \
      --config.env PATH=/usr/local/bin:/usr/bin:/bin --config.env PYTHONPATH=/app \
      --config.env PYTHONDONTWRITEBYTECODE=1 --config.env PYTHONUNBUFFERED=1 \
      --config.env "PYTHON_VERSION=$python_version" --config.env VCPORTAL_VAR_DIR=/var/lib/vcportal \
      --config.exposedports 8000/tcp --config.entrypoint python3 \
      --config.cmd -m --config.cmd uvicorn --config.cmd portal.asgi:application --config.cmd --ws \
      --config.cmd websockets --config.cmd --host --config.cmd 0.0.0.0 --config.cmd --port --config.cmd 8000 \
      --config.cmd --timeout-keep-alive --config.cmd 65
    rm -rf "$rootfs"
  fi
  echo "$registry/vcportal:$tag"
}

# PostgreSQL for the chart's bundled database: Debian's server, its share files and
# the modules initdb loads (not the JIT, whose LLVM is ten times the rest).
pg_home="/usr/lib/postgresql/$(ls /usr/lib/postgresql | sort -n | tail -n 1)"
pg_share="/usr/share/postgresql/${pg_home##*/}"

postgresql_entrypoint() { cat <<'SCRIPT'
#!/bin/sh
# First start: a cluster in $PGDATA with one password-protected role owning one database.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
  password="$(mktemp)"
  printf '%s' "$POSTGRES_PASSWORD" >"$password"
  initdb --pgdata "$PGDATA" --username "$POSTGRES_USER" --pwfile "$password" --auth scram-sha-256 \
    --encoding UTF8 --locale C >/dev/null
  rm -f "$password"
  printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  echo "CREATE DATABASE \"$POSTGRES_DB\"" | postgres --single -D "$PGDATA" -c jit=off postgres >/dev/null
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp -c jit=off "$@"
SCRIPT
}

postgresql_image() {
  local tag version
  version="$("$pg_home/bin/postgres" --version | awk '{print $3}')"
  tag="$version-$(content_hash "$pg_home/bin/postgres" "$pg_home/bin/initdb" /bin/busybox)"
  if ! in_registry postgresql "$tag"; then
    log "building postgresql:$tag"
    local rootfs; rootfs="$(mktemp -d)"
    busybox_rootfs "$rootfs"
    nonroot_user "$rootfs"
    mkdir -p "$rootfs$pg_home/bin" "$rootfs$pg_home/lib" "$rootfs/usr/share/postgresql" "$rootfs/usr/local/bin" \
      "$rootfs/usr/lib/x86_64-linux-gnu" "$rootfs/var/lib/postgresql"
    cp "$pg_home/bin/postgres" "$pg_home/bin/initdb" "$pg_home/bin/pg_isready" "$rootfs$pg_home/bin/"
    find "$pg_home/lib" -maxdepth 1 -name '*.so' ! -name 'llvmjit*' -exec cp {} "$rootfs$pg_home/lib/" \;
    cp -r "$pg_share" "$rootfs/usr/share/postgresql/"
    cp -r /usr/share/zoneinfo "$rootfs/usr/share/"
    postgresql_entrypoint >"$rootfs/usr/local/bin/postgresql-entrypoint"
    chmod 755 "$rootfs/usr/local/bin/postgresql-entrypoint"
    copy_shared_libraries "$rootfs"
    chown "$runtime_user:$runtime_user" "$rootfs/var/lib/postgresql"
    publish postgresql "$tag" "$rootfs" --config.user "$runtime_user:$runtime_user" \
      --config.env "PATH=$pg_home/bin:/usr/local/bin:/bin" --config.env PGDATA=/var/lib/postgresql/data \
      --config.env POSTGRES_USER=postgres --config.env POSTGRES_DB=postgres \
      --config.exposedports 5432/tcp --config.entrypoint /usr/local/bin/postgresql-entrypoint
    rm -rf "$rootfs"
  fi
  echo "$registry/postgresql:$tag"
}

metrics_server_image() {
  local src="$node_bin/metrics-server" tag
  tag="${METRICS_SERVER_VERSION#v}-$(content_hash "$src")"
  if ! in_registry metrics-server "$tag"; then
    log "building metrics-server:$tag"
    local rootfs; rootfs="$(mktemp -d)"
    mkdir -p "$rootfs/usr/local/bin"
    cp "$src" "$rootfs/usr/local/bin/metrics-server"
    base_files "$rootfs"
    nonroot_user "$rootfs"
    publish metrics-server "$tag" "$rootfs" --config.user "$runtime_user:$runtime_user" \
      --config.entrypoint /usr/local/bin/metrics-server
    rm -rf "$rootfs"
  fi
  echo "$registry/metrics-server:$tag"
}

ingress_image() {
  local src="$ingress_bin/vcportal-ingress" tag
  tag="$(basename "$ingress_bin" | sed 's/^ingress-//')-$(content_hash "$src")"
  if ! in_registry ingress "$tag"; then
    log "building ingress:$tag"
    local rootfs; rootfs="$(mktemp -d)"
    mkdir -p "$rootfs/usr/local/bin"
    cp "$src" "$rootfs/usr/local/bin/vcportal-ingress"
    base_files "$rootfs"
    nonroot_user "$rootfs"
    publish ingress "$tag" "$rootfs" --config.user "$runtime_user:$runtime_user" \
      --config.exposedports 8080/tcp --config.exposedports 8443/tcp --config.entrypoint /usr/local/bin/vcportal-ingress
    rm -rf "$rootfs"
  fi
  echo "$registry/ingress:$tag"
}

redis_image() {
  local tag version
  version="$(redis-server --version | sed -E 's/.*v=([0-9.]+).*/\1/')"
  tag="$version-$(content_hash /usr/bin/redis-server /usr/bin/redis-cli)"
  if ! in_registry redis "$tag"; then
    log "building redis:$tag"
    local rootfs; rootfs="$(mktemp -d)"
    mkdir -p "$rootfs/usr/bin" "$rootfs/usr/lib/x86_64-linux-gnu" "$rootfs/data"
    cp -L /usr/bin/redis-server /usr/bin/redis-cli "$rootfs/usr/bin/"
    base_files "$rootfs"
    nonroot_user "$rootfs"
    copy_shared_libraries "$rootfs"
    chown "$runtime_user:$runtime_user" "$rootfs/data"
    publish redis "$tag" "$rootfs" --config.user "$runtime_user:$runtime_user" --config.env PATH=/usr/bin \
      --config.exposedports 6379/tcp --config.entrypoint /usr/bin/redis-server --config.cmd --dir --config.cmd /data
    rm -rf "$rootfs"
  fi
  echo "$registry/redis:$tag"
}

start_registry
refs="$(
  busybox_image busybox --config.cmd /bin/sh
  busybox_image pause --config.entrypoint /bin/sh --config.entrypoint -c \
    --config.entrypoint 'trap "exit 0" TERM INT; while :; do sleep 3600 & wait $!; done'
  coredns_image
  local_path_image
  metrics_server_image
  ingress_image
  runtime_image
  vcportal_image
  postgresql_image
  redis_image
)"
mkdir -p "$cache/images"
echo "$refs" >"$cache/images/refs.tmp" && mv "$cache/images/refs.tmp" "$cache/images/refs"
if [ "${1:-}" = conformance ]; then
  # shellcheck source=conformance.sh
  source "$here/conformance.sh"
  conformance_images
fi
echo "$refs"
