"""Free TCP ports on 127.0.0.1, chosen explicitly for every listener of a cluster."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from pathlib import Path

# Components without a TCP listener: kwok serves nothing, kine a unix socket.
NO_LISTENER = {"kwok", "kine"}


def allocate(components: Iterable[str]) -> dict[str, int]:
    """One free port per listening component. All sockets are held open until every
    port is chosen, so the same call never hands out a port twice."""
    held = []
    try:
        result = {}
        for component in components:
            if component in NO_LISTENER:
                continue
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            held.append(sock)
            result[component] = sock.getsockname()[1]
        return result
    finally:
        for sock in held:
            sock.close()


def is_free(port: int) -> bool:
    """True if a server could listen on `port` now. Go servers set SO_REUSEADDR, so
    a port whose last connections linger in TIME_WAIT after a stop is free to them."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def accepts_unix(path: Path) -> bool:
    """True once a server listens on the unix socket `path`. Connects through
    /proc/self/fd/N/<name>, a short path whatever the length of `path`: the kernel
    takes at most 107 bytes for a socket's path."""
    try:
        dir_fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    except FileNotFoundError:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            return sock.connect_ex(f"/proc/self/fd/{dir_fd}/{path.name}") == 0
    finally:
        os.close(dir_fd)
