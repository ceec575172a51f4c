"""Telegram's input rules the fake enforces, with Telegram's own error texts. Pure functions, no I/O."""

from __future__ import annotations

import html
import json
import re
from typing import Any

MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64
MAX_CALLBACK_ANSWER_LENGTH = 200

# Fields the Bot API takes as JSON-serialized strings inside form (and even JSON) bodies.
JSON_FIELDS = frozenset(
    {
        "reply_markup",
        "entities",
        "caption_entities",
        "allowed_updates",
        "commands",
        "scope",
        "link_preview_options",
        "reply_parameters",
        "media",
        "results",
        "permissions",
        "menu_button",
        "options",
    }
)

HTML_TAGS = frozenset(
    {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a", "code", "pre"}
    | {"blockquote", "tg-emoji", "tg-time"}
)
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)(\s[^<>]*)?>")
_ENTITY = re.compile(r"&(lt|gt|amp|quot|#[0-9]+|#x[0-9a-fA-F]+);")
_COMMAND = re.compile(r"(?<![\w/])/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?")
_BOT_COMMAND = re.compile(r"[a-z0-9_]{1,32}")


class ApiError(Exception):
    """A Bot API error answer: ``status`` is both the HTTP status and ``error_code``."""

    def __init__(self, status: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(detail: str) -> ApiError:
    return ApiError(400, f"Bad Request: {detail}")


def decode_json_fields(params: dict[str, Any]) -> None:
    for field in JSON_FIELDS & params.keys():
        value = params[field]
        if isinstance(value, str):
            try:
                params[field] = json.loads(value)
            except ValueError:
                what = "reply keyboard markup" if field == "reply_markup" else field
                raise bad_request(f"can't parse {what} JSON object") from None


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def command_entities(text: str) -> list[dict[str, Any]]:
    """``bot_command`` entities as Telegram adds them (offsets and lengths in UTF-16 code units)."""
    return [
        {"type": "bot_command", "offset": utf16_len(text[: m.start()]), "length": utf16_len(m.group(0))}
        for m in _COMMAND.finditer(text)
    ]


def html_to_plain(source: str) -> str:
    """The text a client shows for ``parse_mode=HTML``; raises Telegram's "can't parse entities" errors."""
    out: list[str] = []
    stack: list[str] = []
    i = 0
    while i < len(source):
        char = source[i]
        if char == "<":
            offset = len(source[:i].encode())
            match = _TAG.match(source, i)
            if match is None:
                raise bad_request(f"can't parse entities: Unsupported start tag at byte offset {offset}")
            closing, name = match.group(1), match.group(2).lower()
            if name not in HTML_TAGS:
                raise bad_request(f'can\'t parse entities: Unsupported start tag "{name}" at byte offset {offset}')
            if not closing:
                stack.append(name)
            elif not stack or stack[-1] != name:
                expected = f'"</{stack[-1]}>"' if stack else "nothing"
                raise bad_request(
                    f"can't parse entities: Unmatched end tag at byte offset {offset}, "
                    f'expected {expected}, found "</{name}>"'
                )
            else:
                stack.pop()
            i = match.end()
            continue
        if char == "&" and (entity := _ENTITY.match(source, i)):
            out.append(html.unescape(entity.group(0)))
            i = entity.end()
            continue
        out.append(char)
        i += 1
    if stack:
        raise bad_request(f"can't parse entities: Can't find end tag corresponding to start tag \"{stack[-1]}\"")
    return "".join(out)


def plain_text(source: str, parse_mode: str | None, *, limit: int, empty: str, too_long: str) -> str:
    """Validate a text or caption; returns it as shown (HTML tags removed; Markdown is stored as sent)."""
    text = html_to_plain(source) if (parse_mode or "").upper() == "HTML" else source
    if not text.strip() and empty:
        raise bad_request(empty)
    if len(text) > limit:
        raise bad_request(too_long)
    return text


def check_reply_markup(markup: Any) -> dict[str, Any] | None:
    """Validate ``reply_markup``; returns the inline keyboard a message would show (others are not shown)."""
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" not in markup:
        return None  # reply keyboards, ReplyKeyboardRemove and ForceReply are not part of the message
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request('field "inline_keyboard" of the InlineKeyboardMarkup should be an Array of Arrays')
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not str(button.get("text", "")).strip():
                raise bad_request("BUTTON_TEXT_INVALID")
            if "callback_data" in button:
                size = len(str(button["callback_data"]).encode())
                if not 1 <= size <= MAX_CALLBACK_DATA_BYTES:
                    raise bad_request("BUTTON_DATA_INVALID")
    return {"inline_keyboard": rows}


def check_commands(commands: Any) -> list[dict[str, str]]:
    if not isinstance(commands, list):
        raise bad_request("can't parse commands JSON object")
    for command in commands:
        if not isinstance(command, dict) or not _BOT_COMMAND.fullmatch(str(command.get("command", ""))):
            raise bad_request("BOT_COMMAND_INVALID")
        if not 1 <= len(str(command.get("description", ""))) <= 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
    return [{"command": c["command"], "description": c["description"]} for c in commands]


def as_int(params: dict[str, Any], name: str, *, required: bool = True) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise bad_request(f"{name} is empty" if name != "chat_id" else "chat_id is empty")
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        if name == "chat_id":
            raise bad_request("chat not found") from None  # "@channelname" ids: no channels in the fake
        raise bad_request(f"invalid {name} specified") from None


def as_bool(params: dict[str, Any], name: str) -> bool:
    return params.get(name) in (True, "true", "True", "1", 1)
