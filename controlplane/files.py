"""Files only their owner may read: keys, kubeconfigs, cluster state."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, content: bytes | str) -> None:
    """Write `content` to `path` with mode 0600, atomically (a reader sees the old
    file or the new one, never half of one)."""
    data = content.encode() if isinstance(content, str) else content
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
