#!/usr/bin/env bash
# `make run`: vcportal on http://127.0.0.1:8000 with the embedded defaults (SQLite,
# a private redis-server), a Celery worker, and the embedded host cluster; the same
# application over TLS on https://127.0.0.1:8443 for the Kubernetes gateway (kubectl
# sends tokens over HTTPS only), with a private CA that personal kubeconfigs carry. The
# host cluster has one real node (containerd, kubelet: pods really run) when run as root,
# and kwok nodes. On a fresh machine it first builds the Kubernetes binaries, the node's
# runtime and its images (once; see docs/embedded-host.md).
# Ctrl-C stops everything this script started.
#   scripts/run.sh            all of it
#   scripts/run.sh prepare    only the var directory (secrets, database, admin) and exit
# VCPORTAL_PORT, VCPORTAL_GATEWAY_PORT and VCPORTAL_WORKER_METRICS_PORT move the listeners (e.g. a second stack
# beside this one, as benchmarks/load.py starts), VCPORTAL_VAR_DIR its state.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py=.venv/bin/python

export VCPORTAL_VAR_DIR="${VCPORTAL_VAR_DIR:-$root/var}"
var="$VCPORTAL_VAR_DIR"
mkdir -p "$var" && chmod 700 "$var"

# Secrets generated once and kept under var/ (0600), so restarts keep sessions,
# encrypted fields and the admin password working. They are not exported: settings
# read these files when the variables are unset (portal/settings.py, MAKE_RUN_FILES),
# so every manage.py command finds them too, in any terminal.
keep_secret() {  # keep_secret FILE COMMAND...: write COMMAND's output to FILE unless it has content
  local file="$var/$1"; shift
  if [ ! -s "$file" ]; then (umask 077 && "$@" >"$file"); fi
}
keep_secret secret-key $py -c 'import secrets; print(secrets.token_urlsafe(50))'
keep_secret fernet-key $py -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'
export VCPORTAL_REDIS_PORT="${VCPORTAL_REDIS_PORT:-6390}"
(umask 077 && echo "redis://127.0.0.1:$VCPORTAL_REDIS_PORT/0" >"$var/redis-url")
# The gateway's address and CA, read by settings the same way (the certificate is made once).
port="${VCPORTAL_PORT:-8000}"
gateway_port="${VCPORTAL_GATEWAY_PORT:-8443}"
(umask 077 && echo "https://127.0.0.1:$gateway_port" >"$var/gateway-url" \
  && echo "$var/gateway-tls/ca.crt" >"$var/gateway-ca-file")

$py manage.py migrate --noinput >/dev/null
credentials="$($py manage.py seed_demo --url "http://127.0.0.1:$port/")"
if [ "${1:-}" = prepare ]; then echo "$credentials"; exit 0; fi

# What provisioning needs built, before anything starts: on a fresh machine each build
# prints a line per piece with its usual time; once built, each takes a moment.
# The real node needs root (network namespaces, cgroups, iptables); as anyone else the
# embedded host has kwok nodes only, and its pods do not really run.
real_nodes=0
if [ "$(id -u)" = 0 ]; then real_nodes="${VCPORTAL_REAL_NODES:-1}"; fi
build_missing() {
  # The Kubernetes binaries (with the real node's runtime when there is one); build.sh's
  # last line is the control plane's directory.
  local what=""
  if [ "$real_nodes" -gt 0 ]; then what=all; fi
  VCPORTAL_KUBE_BIN_DIR="${VCPORTAL_KUBE_BIN_DIR:-$(tools/kube/build.sh $what | tail -n 1)}" || return
  export VCPORTAL_KUBE_BIN_DIR
  # The images the real node pulls, in the local registry (`make images`).
  if [ "$real_nodes" -gt 0 ]; then tools/images/build.sh >/dev/null || return; fi
}
if ! build_missing; then
  echo "run: a build failed (see above); without it no vcluster can start" >&2
  exit 1
fi

$py manage.py collectstatic --noinput >/dev/null
$py manage.py gateway_certificate "$var/gateway-tls" >/dev/null
own_redis=true
if command -v redis-cli >/dev/null && redis-cli -p "$VCPORTAL_REDIS_PORT" ping >/dev/null 2>&1; then own_redis=false; fi
scripts/services.sh redis

pids=()
hostcluster=false
stop() {
  trap - INT TERM EXIT
  echo "run: stopping" >&2
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
  if $hostcluster; then $py manage.py hostcluster stop >&2 || true; fi
  if $own_redis; then scripts/services.sh stop-redis; fi
}
trap stop INT TERM EXIT

# --- Embedded host cluster (the localkube launcher): started here when the command exists. ---
# A host cluster that was already running is left running on exit. `hostcluster start`
# is idempotent and prints its admin kubeconfig's path, which is registered (again:
# the API server's port may have moved) as the host cluster "local".
if $py manage.py help hostcluster >/dev/null 2>&1; then
  $py manage.py hostcluster status >/dev/null 2>&1 || hostcluster=true
  if kubeconfig="$($py manage.py hostcluster start --real-nodes "$real_nodes")"; then
    # With a real node, vclusters' control planes are pods on it, as on any host
    # cluster, reached at the node's address; with kwok nodes only (no pod runs), they
    # are processes here.
    if [ "$real_nodes" -gt 0 ]; then
      runtime=(--runtime kubernetes --access nodeport --access-address "$($py manage.py hostcluster node-address)")
    else
      runtime=(--runtime local)
    fi
    # A new registration lets each team's Ingresses use names under its own domain, which
    # the node's ingress controller serves (docs/embedded-host.md, "Ingress").
    $py manage.py register_hostcluster local --kubeconfig "$kubeconfig" "${runtime[@]}" \
      --tenant-policy '{"ingress_hosts": ["*.{team}.apps.vcportal.localhost"]}' >&2 \
      || echo "run: could not register the host cluster (see above); new vclusters will fail until one is" >&2
  else
    hostcluster=false
    echo "run: the host cluster did not start (see above); the portal runs without it" >&2
  fi
fi
# --- end of the host cluster's place ---

# Provisioning tasks mostly wait on API servers and processes starting, so threads;
# -B runs Celery beat inside the worker for the periodic reconcile (its schedule is
# kept in the database by django-celery-beat).
# Restarted if it dies (scripts/supervise.sh), as a process manager would in production.
# Metrics (docs/metrics.md): the worker's on loopback; uvicorn's processes add theirs up
# in a directory each, emptied at every start.
rm -rf "$var/metrics" && mkdir -p "$var/metrics/web" "$var/metrics/gateway"
VCPORTAL_WORKER_METRICS_ADDRESS="127.0.0.1:${VCPORTAL_WORKER_METRICS_PORT:-9540}" \
scripts/supervise.sh worker .venv/bin/celery -A portal worker -B --pool threads --concurrency 8 --loglevel INFO \
  >"$var/celery.log" 2>&1 &
pids+=($!)
# Pages, API and gateway are one ASGI application (docs/gateway.md); uvicorn serves
# it twice: plain HTTP for the browser, TLS for kubectl. --ws websockets: uvicorn's
# default WebSocket implementation refuses kubectl's port-forward handshake. Pages and
# API run in two processes (VCPORTAL_WEB_WORKERS): one Python process serves on one core.
# Idle connections stay open 65 s, not uvicorn's 5: a client reusing a connection just
# as the server closes it sees a reset (the load test found them; docs/performance.md).
PROMETHEUS_MULTIPROC_DIR="$var/metrics/web" \
.venv/bin/uvicorn portal.asgi:application --ws websockets --host 127.0.0.1 --port "$port" \
  --workers "${VCPORTAL_WEB_WORKERS:-2}" --timeout-keep-alive 65 --timeout-graceful-shutdown 5 >"$var/web.log" 2>&1 &
pids+=($!)
PROMETHEUS_MULTIPROC_DIR="$var/metrics/gateway" \
.venv/bin/uvicorn portal.asgi:application --ws websockets --host 127.0.0.1 --port "$gateway_port" \
  --ssl-certfile "$var/gateway-tls/tls.crt" --ssl-keyfile "$var/gateway-tls/tls.key" \
  --timeout-keep-alive 65 --timeout-graceful-shutdown 5 >"$var/gateway.log" 2>&1 &
pids+=($!)

$py - "http://127.0.0.1:$port" <<'PY'
import sys, time, urllib.request
for _ in range(150):
    try:
        urllib.request.urlopen(sys.argv[1] + "/accounts/login/", timeout=1)
        break
    except OSError:
        time.sleep(0.2)
PY
echo
echo "vcportal is up on http://127.0.0.1:$port/ and https://127.0.0.1:$gateway_port/kube/"
echo "  (logs: $var/web.log, $var/gateway.log, $var/celery.log; Ctrl-C stops it)"
echo "$credentials"
wait -n "${pids[@]}"
