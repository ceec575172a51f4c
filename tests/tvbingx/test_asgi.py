"""The ASGI application that `make run` serves answers HTTP, and refuses WebSocket paths it does not route."""

import json

import pytest
from channels.testing import HttpCommunicator, WebsocketCommunicator

from tvbingx.asgi import application


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_http_requests_reach_django_through_asgi():
    communicator = HttpCommunicator(application, "GET", "/health", headers=[(b"host", b"127.0.0.1")])
    response = await communicator.get_response()
    assert response["status"] == 200
    assert json.loads(response["body"])["status"] == "ok"


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_websocket_from_a_foreign_origin_is_refused():
    communicator = WebsocketCommunicator(
        application, "/ws/anything/", headers=[(b"host", b"127.0.0.1"), (b"origin", b"https://evil.example")]
    )
    connected, _ = await communicator.connect()
    assert connected is False
