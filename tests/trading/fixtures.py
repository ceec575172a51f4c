"""Fixtures of the trading tests (made available by conftest.py): a live account on the fake BingX, a hand
on BingX's app, a channel-layer listener."""

import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from tests.conftest_bingx import live_account_on_bingx
from tests.fakes_tests.clients import sync_client


@pytest.fixture
def account(on_bingx):
    """A live account on the fake BingX (modules that need another override this)."""
    return live_account_on_bingx()


@pytest.fixture
def by_hand(bingx, on_bingx):
    """A ccxt client on the account, as someone trading in BingX's app would."""
    client = sync_client(bingx, on_bingx)
    yield client
    client.session.close()


@pytest.fixture
def listen():
    layer = get_channel_layer()

    def listen(topic: str):
        channel = async_to_sync(layer.new_channel)()
        async_to_sync(layer.group_add)(topic, channel)
        received: list[dict] = []

        async def drain():
            while True:
                try:
                    received.append(await asyncio.wait_for(layer.receive(channel), timeout=0.05))
                except TimeoutError:
                    return list(received)

        return lambda: async_to_sync(drain)()

    yield listen
    async_to_sync(layer.flush)()
