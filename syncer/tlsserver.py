"""What the syncer's two APIs for its vcluster's API server (syncer.kubelet,
syncer.metricsapi) share: TLS that admits only clients with a certificate from one CA,
and a threaded server whose handshakes run in each connection's own thread."""

from __future__ import annotations

import logging
import socket
import socketserver
import ssl
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

logger = logging.getLogger(__name__)

HEAD_TIMEOUT = 30  # seconds for the TLS handshake and the request head
# Connections the kernel queues until accepted. The vcluster's API server opens them in
# bursts (a webhook call per write, a request per proxied stream): socketserver's 5 made
# a unix socket answer EAGAIN ("resource temporarily unavailable") under load.
BACKLOG = 1024


def server_context(cert: Path, key: Path, client_ca: Path) -> ssl.SSLContext:
    """TLS that only lets in clients with a certificate from `client_ca`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    context.load_verify_locations(cafile=str(client_ca))
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class TLSServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = BACKLOG
    name = "tls"  # of its thread, and in its log lines

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext, handler: type[BaseHTTPRequestHandler]):
        self.tls = context
        super().__init__(address, handler)

    def get_request(self):
        sock, address = self.socket.accept()
        sock.settimeout(HEAD_TIMEOUT)
        # An answer's head and body are two writes: without this, Nagle's algorithm holds
        # the body until the client's delayed ACK (~40 ms each request on a kept-alive connection).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # The handshake runs in the connection's thread (handshake()), not here.
        return self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def start(self) -> None:
        threading.Thread(target=self.serve_forever, name=self.name, daemon=True).start()


def handshake(handler: BaseHTTPRequestHandler) -> bool:
    """Complete the handler's TLS handshake; False (logged) for a client without a
    certificate, or with one from another CA."""
    try:
        handler.request.do_handshake()
    except OSError as exc:  # ssl.SSLError included
        logger.info("%s: refused a TLS handshake from %s: %s", handler.server.name, handler.client_address[0], exc)
        return False
    return True
