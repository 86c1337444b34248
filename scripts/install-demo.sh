#!/usr/bin/env bash
# `make install-demo`: the Helm chart installed into the embedded host cluster (the one
# `make run` uses, started here if it is not running), with the images `make images`
# builds and the bundled PostgreSQL and Redis; builds whatever is missing first. A second
# run upgrades the release. Its last two lines are the portal's URL and an admin's API
# token. Needs root: the host's real node runs the portal's pods. See docs/helm.md.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py=.venv/bin/python

if [ "$(id -u)" != 0 ]; then
  echo "install-demo: needs root: the embedded host cluster's real node (containerd, kubelet) runs the portal" >&2
  exit 1
fi
export VCPORTAL_KUBE_BIN_DIR="${VCPORTAL_KUBE_BIN_DIR:-$(tools/kube/build.sh all | tail -n 1)}"
tools/images/build.sh >/dev/null
# var/'s generated secrets, which every manage.py command of this checkout reads (as in `make run`).
scripts/run.sh prepare >/dev/null
$py manage.py hostcluster start --real-nodes 1 >/dev/null
exec $py manage.py hostcluster install-demo
