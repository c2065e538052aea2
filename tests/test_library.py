"""The public library API as docs/quickstart.md shows it."""

from __future__ import annotations

import pytest

from bconnect import ApiError, Client


def test_client_authorize_and_cancel(controller) -> None:
    with Client(controller.addr) as client:
        client.token = client.authenticate_password("ampw_1234567890", "admin", "password")["token"]
        auth = client.authorize_session("ttcp_1234567890")
        assert auth["endpoint"] == "tcp://127.0.0.1:22"
        assert client.cancel_session(auth["session_id"])["status"] == "canceling"
        with pytest.raises(ApiError) as info:
            client.read("sessions", "s_0000000000")
        assert info.value.status == 404 and info.value.kind == "NotFound"
