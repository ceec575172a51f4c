"""Fitting texts into Telegram's 4096 characters: split at line ends for new messages, cut for edits."""

from __future__ import annotations

from telegram_bot.replies import CUT_NOTE, split_text, truncate


def test_a_short_text_stays_whole():
    assert split_text("a\nb", limit=10) == ["a\nb"]
    assert truncate("a\nb", limit=10) == "a\nb"


def test_a_long_text_is_split_after_whole_lines():
    lines = [f"line {n:02d}" for n in range(10)]  # 7 characters each

    pieces = split_text("\n".join(lines), limit=20)

    assert pieces == [
        "line 00\nline 01",
        "line 02\nline 03",
        "line 04\nline 05",
        "line 06\nline 07",
        "line 08\nline 09",
    ]


def test_a_line_longer_than_the_limit_is_cut_inside():
    assert split_text("x" * 25, limit=10) == ["x" * 10, "x" * 10, "x" * 5]


def test_a_cut_text_says_so_and_fits():
    text = "\n".join(f"line {n:03d}" for n in range(1000))

    cut = truncate(text, limit=100)

    assert len(cut) <= 100
    assert cut.endswith(CUT_NOTE)
    assert cut.startswith("line 000\nline 001")
