"""The runtime contract: every test in this folder runs once per runtime (the parent
conftest's `runtime_host`), so the production runtime keeps every promise the
development one does. Here `host` and `provisioned` are the runtime's."""

import pytest

from tests.provisioning.conftest import _provisioner


@pytest.fixture
def host(runtime_host):
    return runtime_host.host


@pytest.fixture
def provisioned(world, runtime_host):
    """provisioned(name, team=alpha, **fields) on the runtime under test."""
    yield from _provisioner(world)
