"""How the portal's apps read errors from Kubernetes API servers (hosts, vclusters,
management clusters): which are worth retrying, how to say one to a person, and a read
that answers None for an object that is not there."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar

import urllib3
from kubernetes.client.rest import ApiException

# Busy, raced (409) or briefly failing; 0 is the client's own connection failure.
TRANSIENT_STATUS = {0, 409, 429, 500, 502, 503, 504}
REQUEST_TIMEOUT = 10

T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    """Errors worth retrying: the API was busy, briefly unreachable, or raced us."""
    if isinstance(exc, ApiException):
        return exc.status in TRANSIENT_STATUS
    return isinstance(exc, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError))


def describe(exc: BaseException) -> str:
    """A one-line, secret-free description of an error for users."""
    if isinstance(exc, ApiException):
        try:
            message = json.loads(exc.body or "{}").get("message") or exc.reason
        except ValueError:
            message = exc.reason
        return f"host API answered {exc.status}: {message}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def read_or_none(read: Callable[..., T], *args, **kwargs) -> T | None:
    """`read(*args, **kwargs)` with the client's typed API (read_namespaced_pod, …), or
    None if the object does not exist; other errors are raised."""
    try:
        return read(*args, _request_timeout=REQUEST_TIMEOUT, **kwargs)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
