"""The sender's pacing rules on their own (a clock the test moves): Telegram's 30/s overall and 1/s per
chat counted from the answers, and a 429 pausing one chat, or everything when several chats get one."""

from __future__ import annotations

import asyncio

from telegram_bot.notifications.sender import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def limiter(clock: Clock) -> RateLimiter:
    return RateLimiter(overall=3, span=1.0, chat_interval=1.0, clock=clock)


def send(rate: RateLimiter, chat_id: int) -> None:
    """One message started and answered at once."""
    rate.release(asyncio.run(rate.acquire(chat_id)))


def test_a_chat_waits_a_full_interval_after_its_last_answer():
    clock = Clock()
    rate = limiter(clock)
    slot = asyncio.run(rate.acquire(1))
    clock.now += 0.4  # Telegram answers 0.4 s later
    rate.release(slot)

    assert rate.wait_for(1) == 1.0
    assert rate.wait_for(2) <= 0


def test_a_chat_with_a_message_in_flight_gets_no_other():
    clock = Clock()
    rate = limiter(clock)
    asyncio.run(rate.acquire(1))
    clock.now += 5

    assert 1 in rate.busy_chats(within=1.0)


def test_the_overall_window_is_full_until_the_oldest_answer_is_a_span_old():
    clock = Clock()
    rate = limiter(clock)
    for chat in (1, 2, 3):
        send(rate, chat)
        clock.now += 0.1

    assert 0.7 < rate.wait_for(4) <= 0.8  # the first answer was at 100.0; now 100.3
    clock.now = 101.01
    assert rate.wait_for(4) <= 0


def test_a_429_pauses_its_chat_only():
    clock = Clock()
    rate = limiter(clock)

    assert rate.flooded(1, 5) is False
    assert rate.wait_for(1) == 5
    assert rate.wait_for(2) <= 0


def test_429s_on_two_chats_pause_every_chat():
    clock = Clock()
    rate = limiter(clock)
    rate.flooded(1, 5)
    clock.now += 1

    assert rate.flooded(2, 3) is True
    assert rate.wait_for(3) == 3
