"""What a Kubernetes API request is about (verb, resource, namespace, name), read
from its method and path the way the API server's RequestInfoFactory reads them."""

from dataclasses import dataclass
from urllib.parse import parse_qs

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# These follow a namespace's name as subresources of the Namespace itself.
NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
# Subresources whose GET opens a stream (WebSocket) that acts inside a pod.
STREAMING_SUBRESOURCES = frozenset({"exec", "attach", "portforward"})


@dataclass(frozen=True)
class RequestInfo:
    verb: str
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    is_resource: bool = True

    @property
    def mutating(self) -> bool:
        return self.verb in {"create", "update", "patch", "delete", "deletecollection"}


def parse(method: str, path: str, query: str = "") -> RequestInfo:
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "api":
        group, rest = "", parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, rest = parts[1], parts[3:]
    else:
        return RequestInfo(verb=method.lower(), is_resource=False)
    watch_path = bool(rest) and rest[0] == "watch"
    if watch_path:
        rest = rest[1:]
    namespace = ""
    if len(rest) >= 2 and rest[0] == "namespaces":
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
        else:
            namespace = ""  # the Namespace object itself
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    verb = _verb(method, bool(name), subresource, watch_path or _flag(query, "watch"))
    return RequestInfo(verb, group, resource, subresource, namespace, name)


def _verb(method: str, named: bool, subresource: str, watch: bool) -> str:
    if method == "GET" and subresource in STREAMING_SUBRESOURCES:
        return "create"  # what RBAC asks for pods/exec, attach and portforward
    if method in ("GET", "HEAD"):
        return "watch" if watch else ("get" if named else "list")
    if method == "DELETE":
        return "delete" if named else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


def _flag(query: str, name: str) -> bool:
    return parse_qs(query).get(name, [""])[0].lower() in {"1", "true"}


def is_streaming(info: RequestInfo, query: str) -> bool:
    """Responses that stay open: watches and followed logs."""
    return info.verb == "watch" or (info.subresource == "log" and _flag(query, "follow"))
