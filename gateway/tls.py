"""A serving certificate for the gateway where no public one is at hand (`make run`,
tests): kubectl sends bearer tokens over HTTPS only. A private CA signs it; its
certificate goes into personal kubeconfigs through VCPORTAL_GATEWAY_CA_FILE, and its
key is not kept."""

from pathlib import Path

from controlplane import pki
from controlplane.files import write_private

DEFAULT_NAMES = ("127.0.0.1", "localhost")


def ensure_certificate(directory: Path, names: tuple[str, ...] = DEFAULT_NAMES) -> dict[str, Path]:
    """ca.crt, tls.crt and tls.key in `directory` (0700), created once."""
    paths = {name: directory / name for name in ("ca.crt", "tls.crt", "tls.key")}
    if not all(path.exists() for path in paths.values()):
        ca = pki.new_ca("vcportal-gateway-ca")
        serving = pki.issue(ca, "vcportal-gateway", server_names=names)
        write_private(paths["ca.crt"], ca.cert_pem)
        write_private(paths["tls.crt"], serving.cert_pem)
        write_private(paths["tls.key"], serving.key_pem)
    return paths
