"""The close code the gateway gives kubectl when the API server's stream ends."""

import aiohttp

from gateway.proxy import _close_code


def test_the_api_servers_close_code_is_passed_on_and_a_reserved_one_never_sent():
    close = aiohttp.WSMsgType.CLOSE
    assert _close_code(aiohttp.WSMessage(close, 1000, "")) == 1000
    assert _close_code(aiohttp.WSMessage(close, 4001, "")) == 4001
    assert _close_code(aiohttp.WSMessage(close, 1005, "")) == 1000, "a close frame without a code is normal"
    assert _close_code(aiohttp.WSMessage(aiohttp.WSMsgType.ERROR, None, None)) == 1011, "no close frame: an error"
    assert _close_code(aiohttp.WSMessage(aiohttp.WSMsgType.CLOSED, None, None)) == 1011
