import asyncio

import pytest

from gateway.upstream import BadKubeconfig, Upstreams
from portal.fields import fernet

from .conftest import ADMIN_KUBECONFIG


def encrypted(text: str) -> str:
    return fernet().encrypt(text.encode()).decode()


def test_one_connection_per_vcluster_until_its_kubeconfig_changes():
    async def scenario():
        upstreams = Upstreams()
        first = await upstreams.get(1, encrypted(ADMIN_KUBECONFIG))
        same = await upstreams.get(1, upstreams._by_vcluster[1][0])
        moved = await upstreams.get(1, encrypted(ADMIN_KUBECONFIG.replace("127.0.0.1:1", "127.0.0.1:2")))
        result = (first is same, first.session.closed, first.server, moved.server, moved.auth_headers)
        await upstreams.close()
        return result

    assert asyncio.run(scenario()) == (True, True, "https://127.0.0.1:1", "https://127.0.0.1:2",
                                       {"Authorization": "Bearer not-a-real-token"})


@pytest.mark.parametrize("ciphertext", ["not-encrypted", encrypted("not: [a kubeconfig"), encrypted("{}")])
def test_an_unusable_stored_kubeconfig_is_named_not_shown(ciphertext):
    with pytest.raises(BadKubeconfig) as caught:
        asyncio.run(Upstreams().get(7, ciphertext))
    assert "vcluster 7" in str(caught.value) and "token" not in str(caught.value)
