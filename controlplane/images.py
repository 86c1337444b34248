"""The images real nodes pull, as `make images` (tools/images/build.sh) built them.

The build pushes them to a registry on 127.0.0.1 and writes their references, one a
line (`127.0.0.1:PORT/name:tag`), to a file in its cache; this module reads that file,
so the launcher pulls exactly what was built without knowing how tags are made.
"""

from __future__ import annotations

import os
from pathlib import Path

import requests


class ImagesMissing(RuntimeError):
    pass


def refs_file() -> Path:
    """Where tools/images/build.sh writes the references; keep the two paths in step."""
    cache = os.environ.get("VCPORTAL_IMAGES_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vcportal"
    )
    return Path(cache) / "images" / "refs"


def references() -> dict[str, str]:
    """Image name (`busybox`, `pause`, `coredns`) -> full reference."""
    try:
        lines = refs_file().read_text().split()
    except FileNotFoundError:
        raise ImagesMissing(f"no image references in {refs_file()}. Run `make images`.") from None
    return {ref.rsplit("/", 1)[1].split(":", 1)[0]: ref for ref in lines}


def reference(name: str) -> str:
    refs = references()
    if name not in refs:
        raise ImagesMissing(f"no {name} image in {refs_file()}. Run `make images`.")
    return refs[name]


def registry_address() -> str:
    """`127.0.0.1:PORT` of the registry the images were pushed to."""
    return reference("pause").split("/", 1)[0]


def check_registry() -> None:
    """Fail with the fix when the registry does not answer: nodes could not pull."""
    address = registry_address()
    try:
        requests.get(f"http://{address}/v2/", timeout=2).raise_for_status()
    except requests.RequestException as exc:
        raise ImagesMissing(f"the image registry on {address} does not answer ({exc}). Run `make images`.") from exc
