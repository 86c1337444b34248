"""A tenant's Ingress, served for real: a chart (charts/web: a Deployment of busybox's
httpd, its Service and an Ingress, with TLS) installed into a vcluster with
`helm install --wait`, its page fetched through the embedded host's ingress controller
(localkube.addons: vcportal-ingress) at the node's address, over HTTP and HTTPS with the
tenant's own certificate, behind the NetworkPolicies provisioning gives every vcluster
namespace."""

from __future__ import annotations

import base64
import socket
import ssl
import subprocess
import uuid
from pathlib import Path

import pytest
import requests
from kubernetes import client

from controlplane import pki
from controlplane.images import reference
from localkube.addons import INGRESS_NODE_PORTS
from localkube.binaries import helm
from provisioning import manifests
from provisioning.hostkube import HostKube
from tests.kube.helpers import eventually

from .conftest import TEST_LABELS

CHART = Path(__file__).with_name("charts") / "web"
DOMAIN = "team-a.apps.vcportal.localhost"


def tls_secret(name: str, pair: pki.KeyPair) -> dict:
    return {"metadata": {"name": name}, "type": "kubernetes.io/tls",
            "data": {"tls.crt": base64.b64encode(pair.cert_pem).decode(),
                     "tls.key": base64.b64encode(pair.key_pem).decode()}}


def fetch_https(address: str, port: int, host: str, ca_pem: bytes) -> str:
    """GET / from `host` at address:port, verifying the server's certificate for `host`
    against `ca_pem` (the tenant's CA)."""
    context = ssl.create_default_context(cadata=ca_pem.decode())
    with socket.create_connection((address, port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    return answer.decode(errors="replace")


@pytest.mark.realnode
def test_a_tenants_chart_with_an_ingress_is_served_by_the_hosts_controller(make_real_vcluster, real_host_cluster):
    vc = make_real_vcluster("web", policy={"ingress_hosts": [f"*.{DOMAIN}"]})
    host_kube = HostKube(real_host_cluster.admin_kubeconfig.read_text())
    for policy in manifests.network_policies(vc.host_namespace, TEST_LABELS):
        host_kube.apply(policy)
    host, page = f"shop-{uuid.uuid4().hex[:6]}.{DOMAIN}", f"page-{uuid.uuid4().hex}"
    ca = pki.new_ca("tenant CA")
    vc.tenant.core.create_namespaced_secret("default", tls_secret("shop-tls", pki.issue(ca, host, server_names=(host,))))

    installed = subprocess.run(
        [str(helm()), "install", "shop", str(CHART), "--kubeconfig", str(vc.kubeconfig), "--wait", "--timeout", "4m",
         "--set", f"image={reference('busybox')}", "--set", f"host={host}", "--set", "tlsSecret=shop-tls",
         "--set", f"page={page}"], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr

    node = real_host_cluster.real_node().link.node_ip
    tenant = client.NetworkingV1Api(vc.tenant.api)
    published = eventually(lambda: tenant.read_namespaced_ingress("shop", "default").status.load_balancer.ingress,
                           what="the controller's address on the virtual Ingress")
    assert [a.ip for a in published] == [node]

    http = f"http://{node}:{INGRESS_NODE_PORTS['http']}/"
    served = eventually(lambda: (r := requests.get(http, headers={"Host": host}, timeout=5)).status_code == 200 and r,
                        what="the page over HTTP")
    assert served.text == page
    assert requests.get(http, headers={"Host": f"other.{DOMAIN}"}, timeout=5).status_code == 404
    answer = eventually(lambda: fetch_https(node, INGRESS_NODE_PORTS["https"], host, ca.cert_pem),
                        what="the page over HTTPS with the tenant's certificate")
    assert answer.startswith("HTTP/1.1 200") and answer.endswith(page), answer

    uninstalled = subprocess.run([str(helm()), "uninstall", "shop", "--kubeconfig", str(vc.kubeconfig), "--wait"],
                                 capture_output=True, text=True, timeout=180)
    assert uninstalled.returncode == 0, uninstalled.stderr
    eventually(lambda: requests.get(http, headers={"Host": host}, timeout=5).status_code == 404,
               what="the page gone with the chart")
