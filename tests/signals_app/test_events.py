"""Pipeline events leave through one background sender: in order, without exhausting Redis, never blocking."""

import asyncio
import time

import pytest
import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from signals_app.events import _EventSender


async def events_received(layer, channel, count: int) -> list[dict]:
    """The next ``count`` events on ``channel``, each message unfolded (``pipeline.events`` holds several)."""
    events: list[dict] = []
    while len(events) < count:
        message = await asyncio.wait_for(layer.receive(channel), 10)
        events += message["events"] if message["type"] == "pipeline.events" else [message]
    return events


@pytest.mark.redis
def test_a_burst_of_events_arrives_complete_and_in_order_over_redis(settings, redis_url):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_url], "prefix": f"test-events-{time.time_ns()}", "capacity": 5000},
        }
    }
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)("signals.raw", channel)
    sender = _EventSender()

    for number in range(500):  # far more at once than the Redis pool has connections
        sender.submit("signals.raw", {"type": "pipeline.event", "number": number})

    async def receive_all():
        # Received on the layer's own loop-bound client: a fresh layer object for this loop.
        return [event["number"] for event in await events_received(layer, channel, 500)]

    assert async_to_sync(receive_all)() == list(range(500))


def test_submitting_never_waits_for_the_channel_layer(settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]}}
    }
    sender = _EventSender()
    started = time.perf_counter()
    for number in range(200):  # Redis is unreachable: every send will fail, in the background
        sender.submit("signals.raw", {"type": "pipeline.event", "number": number})
    assert time.perf_counter() - started < 0.5


@pytest.mark.redis
def test_events_go_only_to_groups_with_a_live_member_and_in_order(settings, redis_url):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_url], "prefix": f"test-events-{time.time_ns()}", "group_expiry": 600},
        }
    }
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)("signals.validated", channel)
    # signals.raw has only a member that joined longer ago than group_expiry: group_send would skip it too.
    client = redis.Redis.from_url(redis_url)
    client.zadd(layer._group_key("signals.raw"), {"specific.expired!": time.time() - 1200})
    sent_to = []
    group_send = layer.group_send

    async def recording_group_send(group, message):
        sent_to.append(group)
        await group_send(group, message)

    layer.group_send = recording_group_send
    sender = _EventSender()

    for number in range(100):
        sender.submit("signals.raw" if number % 2 else "signals.validated", {"type": "e", "number": number})

    async def receive_all():
        return [event["number"] for event in await events_received(layer, channel, 50)]

    assert async_to_sync(receive_all)() == list(range(0, 100, 2))
    assert set(sent_to) == {"signals.validated"}
    client.delete(layer._group_key("signals.raw"))


@pytest.mark.redis
def test_a_topics_events_in_one_batch_go_in_few_messages_each_holding_them_in_order(settings, redis_url):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_url], "prefix": f"test-events-{time.time_ns()}"},
        }
    }
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)("orders.executed", channel)
    sender = _EventSender()

    for number in range(250):  # submitted far faster than a batch's 100 ms: a few batches at most
        sender.submit("orders.executed", {"type": "pipeline.event", "topic": "orders.executed", "number": number})

    async def receive_messages():
        messages, events = [], 0
        while events < 250:
            message = await asyncio.wait_for(layer.receive(channel), 10)
            messages.append(message)
            events += len(message["events"]) if message["type"] == "pipeline.events" else 1
        return messages

    messages = async_to_sync(receive_messages)()
    numbers = [
        event["number"]
        for message in messages
        for event in (message["events"] if message["type"] == "pipeline.events" else [message])
    ]
    assert numbers == list(range(250))
    assert len(messages) <= 10
    assert all(len(message.get("events", [message])) <= _EventSender.MESSAGE_EVENTS for message in messages)
    assert {message["topic"] for message in messages} == {"orders.executed"}
