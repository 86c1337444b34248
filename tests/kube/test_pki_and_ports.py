"""Pure parts of the launcher: certificates and port allocation."""

import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from controlplane import pki
from localkube import ports


def test_issued_server_cert_is_signed_by_the_ca_and_names_its_sans():
    ca = pki.new_ca("test-ca")
    pair = pki.issue(ca, "kube-apiserver", server_names=("127.0.0.1", "kubernetes.default.svc"))
    cert = x509.load_pem_x509_certificate(pair.cert_pem)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)

    cert.verify_directly_issued_by(ca_cert)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert sans.get_values_for_type(x509.DNSName) == ["kubernetes.default.svc"]
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_client_cert_carries_user_and_groups_as_kubernetes_reads_them():
    ca = pki.new_ca("test-ca")
    cert = x509.load_pem_x509_certificate(
        pki.issue(ca, "alice", organizations=("system:masters", "team-a"), client=True).cert_pem
    )
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    orgs = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert orgs == ["system:masters", "team-a"]
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_a_cert_from_another_ca_does_not_verify():
    pair = pki.issue(pki.new_ca("one"), "x", client=True)
    other = x509.load_pem_x509_certificate(pki.new_ca("two").cert_pem)
    with pytest.raises(ValueError):
        x509.load_pem_x509_certificate(pair.cert_pem).verify_directly_issued_by(other)


def test_keys_are_p256():
    key = pki.new_key()
    assert isinstance(key.curve, ec.SECP256R1)


def test_ports_are_distinct_free_and_skip_components_that_do_not_listen():
    allocated = ports.allocate(["kine", "kube-apiserver", "kwok", "kube-controller-manager", "kube-scheduler"])
    assert set(allocated) == {"kube-apiserver", "kube-controller-manager", "kube-scheduler"}
    assert len(set(allocated.values())) == 3
    assert all(ports.is_free(p) for p in allocated.values())


def test_an_interrupted_init_is_done_again(tmp_path, monkeypatch):
    """cluster.json is written last: a process killed during init leaves none, and the
    next init writes everything again instead of trusting half a state directory."""
    from localkube import LocalCluster

    cluster = LocalCluster(tmp_path / "c")

    def killed(config):
        raise SystemExit("killed while writing kubeconfigs")

    monkeypatch.setattr(cluster, "_write_kubeconfigs", killed)
    with pytest.raises(SystemExit):
        cluster.init(name="c")
    assert not cluster.config_path.exists()

    monkeypatch.undo()
    cluster.init(name="c")
    assert (cluster.pki_dir / "admin.crt").exists()
    assert cluster.admin_kubeconfig.exists()


def test_a_port_in_time_wait_after_a_stop_counts_as_free():
    import socket

    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the server side closes first: its end waits in TIME_WAIT
    client.close()
    server.close()
    assert ports.is_free(port)
