#!/usr/bin/env bash
# Everything `make test` needs, then the whole suite: the Kubernetes binaries, Redis,
# PostgreSQL and chromium, installed and started by this script on a fresh machine.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

export VCPORTAL_KUBE_BIN_DIR="$(tools/kube/build.sh all | tail -n 1)"
tools/images/build.sh >/dev/null
scripts/services.sh install redis postgres chromium compose
scripts/services.sh redis
# Two runs side by side (e.g. from two git worktrees) need their own database and
# Redis database: set VCPORTAL_TEST_DB (a database name) and VCPORTAL_TEST_REDIS_DB.
database_url="$(scripts/services.sh postgres | tail -n 1)"
export DATABASE_URL="${database_url%/*}/${VCPORTAL_TEST_DB:-vcportal}"
export REDIS_URL="redis://127.0.0.1:${VCPORTAL_REDIS_PORT:-6390}/${VCPORTAL_TEST_REDIS_DB:-1}"
export DJANGO_SECRET_KEY="${DJANGO_SECRET_KEY:-test-only-secret-key}"
# A fixed, test-only Fernet key: encrypted fields in test databases only.
export FIELD_ENCRYPTION_KEYS="${FIELD_ENCRYPTION_KEYS:-dGVzdC1vbmx5LWtleS1ub3QtZm9yLXByb2R1Y3Rpb24=}"
export VCPORTAL_VAR_DIR="${VCPORTAL_TEST_VAR_DIR:-$(mktemp -d /tmp/vcportal-test.XXXXXX)}"

exec .venv/bin/python -m pytest "$@"
