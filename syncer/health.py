"""`/healthz` and `/readyz` over HTTP, for a supervisor or a Kubernetes probe, and
`/metrics` for Prometheus (syncer.metrics).

/healthz answers 200 while the process serves at all; /readyz answers 200 once the
syncer has listed both clusters and started its controllers, 503 before (also while it
waits for an API server to answer). Plain HTTP on the address the config gives
(loopback locally; every address, 0.0.0.0, in a pod for the kubelet's probes): the
answers carry no tenant data, only counts and timings by kind.
"""

from __future__ import annotations

import http.client
import http.server
import threading
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


class HealthServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], ready: Callable[[], bool]):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(handler):
                if handler.path == "/healthz":
                    handler._answer(200, b"ok")
                elif handler.path == "/readyz":
                    handler._answer(*((200, b"ok") if ready() else (503, b"not ready")))
                elif handler.path == "/metrics":
                    handler._answer(200, generate_latest(), CONTENT_TYPE_LATEST)
                else:
                    handler._answer(404, b"not found")

            def _answer(handler, status: int, body: bytes, content_type: str = "text/plain") -> None:
                handler.send_response(status)
                handler.send_header("Content-Type", content_type)
                handler.send_header("Content-Length", str(len(body)))
                handler.end_headers()
                handler.wfile.write(body)

            def log_message(handler, *args):
                pass

        super().__init__(address, Handler)

    def start(self) -> None:
        threading.Thread(target=self.serve_forever, name="health", daemon=True).start()


def probe(address: str, path: str = "/readyz", timeout: float = 2) -> int | None:
    """The HTTP status a health listener at `address` ("IP:PORT") answers, or None if
    nothing answers. Plain http.client: no proxy from the environment gets in between."""
    host, _, port = address.rpartition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()
