#!/usr/bin/env bash
# supervise.sh NAME COMMAND...: run COMMAND and start it again whenever it exits, as a
# process manager would (docker-compose's restart policy, Kubernetes, systemd). `make
# run` runs its Celery worker so: a worker can die of a broker outage (kombu 5.7's Redis
# transport raises AttributeError while closing a lost connection with tasks in flight),
# and provisioning must not stop with it. SIGTERM or SIGINT stops COMMAND, then this.
set -uo pipefail
name="$1"; shift
child=0
stop() { kill -TERM "$child" 2>/dev/null; wait "$child"; exit 0; }
trap stop TERM INT
while :; do
  "$@" &
  child=$!
  wait "$child"
  echo "supervise: $name exited with status $?; starting it again in 2 s" >&2
  sleep 2 &
  wait $!
done
