"""The tokens `vcp token` hands kubectl, kept until shortly before they expire.

kubectl runs its credential plugin once per invocation and keeps nothing, so without a
cache every `kubectl get` would issue (and audit) a new token. One file per portal,
team and vcluster, 0600 like the vcp config: it holds what a downloaded kubeconfig
holds, a personal token that expires.
"""

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .config import write_private

# A token this close to its expiry is replaced: a watch started with it keeps going.
RENEW_BEFORE = timedelta(minutes=5)


class Cache:
    def __init__(self, directory: Path, portal_url: str):
        self.directory = directory
        self.portal = hashlib.sha256(portal_url.encode()).hexdigest()[:12]

    def get(self, team: str | None, name: str) -> dict | None:
        """The cached ExecCredential if it stays valid a while yet, else None."""
        try:
            credential = json.loads(self._path(team, name).read_text())
            expires = datetime.strptime(credential["status"]["expirationTimestamp"], "%Y-%m-%dT%H:%M:%SZ")
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return credential if expires.replace(tzinfo=UTC) - RENEW_BEFORE > datetime.now(UTC) else None

    def put(self, team: str | None, name: str, credential: dict) -> None:
        write_private(self._path(team, name), json.dumps(credential))

    def _path(self, team: str | None, name: str) -> Path:
        return self.directory / f"{self.portal}_{team or '-'}_{name}.json"
