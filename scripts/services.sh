#!/usr/bin/env bash
# Installs and starts the local services that `make run` and `make test` need, so a
# fresh machine needs no manual step. Idempotent: what is installed or running stays.
#   scripts/services.sh install [redis] [postgres] [chromium] [compose] [kube-build] [node] [images] [conformance]
#   scripts/services.sh redis       start a private redis-server on $VCPORTAL_REDIS_PORT
#   scripts/services.sh postgres    start PostgreSQL and create the vcportal role and database
#   scripts/services.sh stop-redis
#   scripts/services.sh stop-postgres   stop it at once, dropping its clients (fault tests)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
var="${VCPORTAL_VAR_DIR:-$root/var}"
redis_port="${VCPORTAL_REDIS_PORT:-6390}"
pg_version=15

log() { echo "services: $*" >&2; }

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return
  log "installing ${missing[*]}"
  if [ ! -f /var/lib/apt/periodic/vcportal-updated ] || [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v lock)" ]; then
    apt-get update -qq
    mkdir -p /var/lib/apt/periodic && touch /var/lib/apt/periodic/vcportal-updated
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install() {
  local want=("$@") pkgs=()
  [ ${#want[@]} -eq 0 ] && want=(redis postgres chromium)
  for w in "${want[@]}"; do
    case "$w" in
      redis) pkgs+=(redis-server) ;;
      postgres) pkgs+=("postgresql-$pg_version" postgresql-client) ;;
      chromium) pkgs+=(chromium fonts-liberation) ;;
      # Debian has no `docker compose` plugin; docker-compose checks the file (no engine needed).
      compose) pkgs+=(docker-compose) ;;
      # Real nodes: runc's seccomp support at build time, the tools kube-proxy and the
      # CNI plugins and the policy enforcer call, and what `make images` builds and pushes images with.
      kube-build) pkgs+=(libseccomp-dev) ;;
      node) pkgs+=(iptables nftables conntrack ipset) ;;
      images) pkgs+=(busybox-static umoci skopeo) ;;
      # The tools the e2e suite's agnhost image carries (tools/images/build.sh conformance).
      conformance) pkgs+=(bash curl bind9-dnsutils socat netcat-openbsd) ;;
      *) log "unknown service $w"; exit 2 ;;
    esac
  done
  apt_install "${pkgs[@]}"
}

redis() {
  install redis
  mkdir -p "$var/redis" && chmod 700 "$var"
  if redis-cli -p "$redis_port" ping >/dev/null 2>&1; then return; fi
  log "starting redis-server on 127.0.0.1:$redis_port"
  redis-server --bind 127.0.0.1 --port "$redis_port" --daemonize yes \
    --dir "$var/redis" --pidfile "$var/redis/redis.pid" --logfile "$var/redis/redis.log" \
    --save "" --appendonly no >/dev/null
  for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && return; sleep 0.1; done
  log "redis-server did not answer; see $var/redis/redis.log"; exit 1
}

stop_redis() {
  redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
}

postgres() {
  install postgres
  if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$pg_version main"; then
    pg_createcluster "$pg_version" main >/dev/null
  fi
  if ! pg_lsclusters -h | awk '$1=="'"$pg_version"'" && $2=="main" {print $4}' | grep -qx online; then
    log "starting PostgreSQL $pg_version"
    pg_ctlcluster "$pg_version" main start
  fi
  local port; port=$(pg_lsclusters -h | awk '$1=="'"$pg_version"'" && $2=="main" {print $3}')
  su postgres -c "psql -p $port -tAc \"SELECT 1 FROM pg_roles WHERE rolname='vcportal'\"" | grep -q 1 ||
    su postgres -c "psql -p $port -qc \"CREATE ROLE vcportal LOGIN CREATEDB PASSWORD 'vcportal'\""
  su postgres -c "psql -p $port -tAc \"SELECT 1 FROM pg_database WHERE datname='vcportal'\"" | grep -q 1 ||
    su postgres -c "createdb -p $port -O vcportal vcportal"
  echo "postgres://vcportal:vcportal@127.0.0.1:$port/vcportal"
}

stop_postgres() {
  pg_ctlcluster "$pg_version" main stop -m fast
}

cmd="${1:-}"; shift || true
case "$cmd" in
  install) install "$@" ;;
  redis) redis ;;
  stop-redis) stop_redis ;;
  postgres) postgres ;;
  stop-postgres) stop_postgres ;;
  *) echo "usage: $0 install [redis|postgres|chromium|compose|kube-build|node|images|conformance]... | redis | stop-redis | postgres | stop-postgres" >&2; exit 2 ;;
esac
