"""The simulated Telegram side of one bot: chats, messages, the update queue, recorded calls, faults, limits.

Thread-safe: the aiohttp handlers (server loop thread) and the test thread share it under ``lock``.
``on_change`` is called (from any thread) whenever an update is queued, so a pending long poll wakes up.
"""

from __future__ import annotations

import copy
import itertools
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .checks import (
    MAX_CALLBACK_ANSWER_LENGTH,
    MAX_CAPTION_LENGTH,
    MAX_TEXT_LENGTH,
    ApiError,
    as_bool,
    as_int,
    bad_request,
    check_commands,
    check_reply_markup,
    command_entities,
    plain_text,
)

NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the same "
    "as a current content and reply markup of the message"
)
QUERY_INVALID = "query is too old and response timeout expired or query ID is invalid"
DEFAULT_ALLOWED_UPDATES = frozenset(
    {"message", "edited_message", "channel_post", "edited_channel_post", "callback_query", "inline_query"}
    | {"chosen_inline_result", "shipping_query", "pre_checkout_query", "poll", "poll_answer", "my_chat_member"}
    | {"chat_join_request", "chat_boost", "removed_chat_boost", "business_connection", "business_message"}
)
DEFAULT_ERROR_TEXTS = {
    400: "Bad Request: fake failure",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    409: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
    500: "Internal Server Error",
    502: "Bad Gateway",
}
RATE_LIMITED_PREFIXES = ("send", "edit", "copymessage", "forwardmessage")


def _group_type(chat_id: int) -> str:
    return "supergroup" if str(chat_id).startswith("-100") else "group"


@dataclass
class StoredMessage:
    message: dict[str, Any]
    from_bot: bool
    source: str | None = None  # text/caption as sent (before HTML parsing), for "not modified"
    deleted: bool = False


@dataclass
class Failure:
    error: ApiError
    times: int | None  # None: until cleared


@dataclass
class RateLimit:
    per_chat_per_second: int | None
    overall_per_second: int | None
    per_group_per_minute: int | None
    overall: deque = field(default_factory=deque)
    per_chat: dict[int, deque] = field(default_factory=dict)


class TelegramState:
    def __init__(self, *, token: str, bot_username: str, bot_first_name: str = "TVBingX") -> None:
        self.token = token
        self.bot_user = {
            "id": int(token.split(":", 1)[0]) if token.split(":", 1)[0].isdigit() else 1,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)  # notified on every recorded call
        self.on_change: Callable[[], None] = lambda: None
        self.calls: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []
        self.allowed_updates: frozenset[str] = DEFAULT_ALLOWED_UPDATES
        self.poll_generation = 0
        self.webhook: dict[str, Any] | None = None
        self.commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self.chats: dict[int, dict[str, Any]] = {}
        self.users: dict[int, dict[str, Any]] = {}
        self.messages: dict[int, dict[int, StoredMessage]] = {}
        self.documents: list[dict[str, Any]] = []
        self.callback_queries: dict[str, dict[str, Any]] = {}
        self.failures: dict[str, list[Failure]] = {}
        self.rate_limit: RateLimit | None = None
        self._update_ids = itertools.count(1)
        self._query_ids = itertools.count(1)
        self._file_ids = itertools.count(1)
        self._message_ids: dict[int, itertools.count] = {}

    # --- chats, users, messages ---
    def chat(self, chat_id: int, chat_type: str | None = None, user: dict[str, Any] | None = None) -> dict[str, Any]:
        """The chat object (created on first use: any chat id is reachable, as if the user had started the bot)."""
        with self.lock:
            if chat_id not in self.chats:
                kind = chat_type or ("private" if chat_id > 0 else _group_type(chat_id))
                chat: dict[str, Any] = {"id": chat_id, "type": kind}
                if kind == "private":
                    person = user or self.user(chat_id)
                    chat["first_name"] = person["first_name"]
                    if "username" in person:
                        chat["username"] = person["username"]
                else:
                    chat["title"] = f"Group {chat_id}"
                self.chats[chat_id] = chat
            return self.chats[chat_id]

    def user(self, user_id: int, username: str | None = None, first_name: str | None = None) -> dict[str, Any]:
        with self.lock:
            known = self.users.get(user_id)
            if known is None or username or first_name:
                known = dict(known or {"id": user_id, "is_bot": False, "language_code": "en"})
                known["first_name"] = first_name or known.get("first_name") or username or f"User{user_id}"
                if username:
                    known["username"] = username
                self.users[user_id] = known
            return known

    def _store(self, chat_id: int, body: dict[str, Any], *, from_bot: bool, source: str | None = None) -> dict:
        ids = self._message_ids.setdefault(chat_id, itertools.count(1))
        message = {"message_id": next(ids), "date": int(time.time()), "chat": self.chat(chat_id), **body}
        self.messages.setdefault(chat_id, {})[message["message_id"]] = StoredMessage(message, from_bot, source)
        return message

    def stored(self, chat_id: int, message_id: int, missing: str) -> StoredMessage:
        stored = self.messages.get(chat_id, {}).get(message_id)
        if stored is None or stored.deleted:
            raise bad_request(missing)
        return stored

    def bot_messages(self, chat_id: int) -> list[dict[str, Any]]:
        with self.lock:
            found = self.messages.get(chat_id, {}).values()
            return [copy.deepcopy(s.message) for s in found if s.from_bot and not s.deleted]

    # --- updates from "users" ---
    def _queue(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": next(self._update_ids), kind: payload}
        self.updates.append(update)
        self.on_change()
        return copy.deepcopy(update)

    def user_message(
        self,
        *,
        user_id: int,
        text: str,
        chat_id: int | None,
        chat_type: str,
        username: str | None,
        first_name: str | None,
    ) -> dict[str, Any]:
        with self.lock:
            user = self.user(user_id, username, first_name)
            if chat_id is None:
                chat_id = user_id
            if chat_id == user_id and chat_type != "private":
                raise ValueError("a group chat needs its own (negative) chat_id")
            if chat_id != user_id and chat_type == "private":
                chat_type = _group_type(chat_id)
            self.chat(chat_id, chat_type, user)
            body: dict[str, Any] = {"from": user, "text": text}
            if entities := command_entities(text):
                body["entities"] = entities
            return self._queue("message", self._store(chat_id, body, from_bot=False))

    def button_press(
        self, *, user_id: int, data: str, message_id: int | None, chat_id: int | None, check_button: bool
    ) -> str:
        with self.lock:
            user = self.user(user_id)
            chat_id = user_id if chat_id is None else chat_id
            candidates = [s for s in self.messages.get(chat_id, {}).values() if s.from_bot and not s.deleted]
            if message_id is None:
                candidates = [s for s in candidates if s.message.get("reply_markup")]
            else:
                candidates = [s for s in candidates if s.message["message_id"] == message_id]
            if not candidates:
                raise ValueError(f"no bot message {message_id or 'with an inline keyboard'} in chat {chat_id}")
            message = candidates[-1].message
            buttons = [
                b.get("callback_data")
                for row in (message.get("reply_markup") or {}).get("inline_keyboard", [])
                for b in row
            ]
            if check_button and data not in buttons:
                raise ValueError(f"message {message['message_id']} has no button {data!r}; it has {buttons}")
            query_id = str(next(self._query_ids))
            self.callback_queries[query_id] = {"answered": False}
            self._queue(
                "callback_query",
                {
                    "id": query_id,
                    "from": user,
                    "message": copy.deepcopy(message),
                    "chat_instance": str(abs(chat_id) * 7919 % 10**12),
                    "data": data,
                },
            )
            return query_id

    def confirm_and_take(self, offset: int, limit: int) -> list[dict[str, Any]]:
        """getUpdates' queue semantics: forget everything below ``offset`` (or all but the last -offset)."""
        with self.lock:
            if offset < 0:
                self.updates = self.updates[offset:]
            elif offset:
                self.updates = [u for u in self.updates if u["update_id"] >= offset]
            self.updates = [u for u in self.updates if (u.keys() - {"update_id"}) & self.allowed_updates]
            return copy.deepcopy(self.updates[:limit])

    # --- recording, faults, limits ---
    def record(self, call: dict[str, Any]) -> None:
        with self.changed:
            call["index"] = len(self.calls)
            self.calls.append(call)
            self.changed.notify_all()

    def add_failure(self, method: str, error: ApiError, times: int | None) -> None:
        with self.lock:
            self.failures.setdefault(method.lower(), []).append(Failure(error, times))

    def take_failure(self, method: str) -> ApiError | None:
        with self.lock:
            queue = self.failures.get(method.lower())
            if not queue:
                return None
            failure = queue[0]
            if failure.times is not None:
                failure.times -= 1
                if failure.times <= 0:
                    queue.pop(0)
            return failure.error

    def check_rate_limit(self, method: str, params: dict[str, Any]) -> None:
        with self.lock:
            limit = self.rate_limit
            if limit is None or not method.lower().startswith(RATE_LIMITED_PREFIXES):
                return
            now = time.monotonic()
            try:
                chat_id = int(params.get("chat_id"))
            except (TypeError, ValueError):
                chat_id = None
            windows = [(limit.overall, limit.overall_per_second, 1.0)]
            if chat_id is not None:
                history = limit.per_chat.setdefault(chat_id, deque())
                if chat_id < 0 and limit.per_group_per_minute:
                    windows.append((history, limit.per_group_per_minute, 60.0))
                windows.append((history, limit.per_chat_per_second, 1.0))
            for history, allowed, span in windows:
                if not allowed:
                    continue
                recent = [t for t in history if t > now - span]
                if len(recent) >= allowed:
                    retry_after = max(1, math.ceil(recent[-allowed] + span - now))
                    raise ApiError(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})
            limit.overall.append(now)
            if chat_id is not None:
                history = limit.per_chat[chat_id]
                history.append(now)
                while history and history[0] < now - 60:
                    history.popleft()
            while limit.overall and limit.overall[0] < now - 1:
                limit.overall.popleft()

    # --- Bot API methods (all but getUpdates, which lives in app.py because it waits) ---
    def api_getme(self, p: dict, files: dict) -> Any:
        return dict(self.bot_user)

    def api_logout(self, p: dict, files: dict) -> Any:
        return True

    def api_close(self, p: dict, files: dict) -> Any:
        return True

    def api_setwebhook(self, p: dict, files: dict) -> Any:
        if not str(p.get("url", "")).startswith("https://") and p.get("url"):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        self.webhook = {"url": p["url"], "params": dict(p)} if p.get("url") else None
        if as_bool(p, "drop_pending_updates"):
            self.updates.clear()
        return True

    def api_deletewebhook(self, p: dict, files: dict) -> Any:
        self.webhook = None
        if as_bool(p, "drop_pending_updates"):
            self.updates.clear()
        return True

    def api_getwebhookinfo(self, p: dict, files: dict) -> Any:
        return {
            "url": (self.webhook or {}).get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self.updates),
        }

    def _command_key(self, p: dict) -> tuple[str, str]:
        scope = p.get("scope") or {"type": "default"}
        scope_key = repr(sorted(scope.items())) if isinstance(scope, dict) else str(scope)
        return scope_key, str(p.get("language_code") or "")

    def api_setmycommands(self, p: dict, files: dict) -> Any:
        self.commands[self._command_key(p)] = check_commands(p.get("commands"))
        return True

    def api_getmycommands(self, p: dict, files: dict) -> Any:
        return copy.deepcopy(self.commands.get(self._command_key(p), []))

    def api_deletemycommands(self, p: dict, files: dict) -> Any:
        self.commands.pop(self._command_key(p), None)
        return True

    def api_getchat(self, p: dict, files: dict) -> Any:
        chat_id = as_int(p, "chat_id")
        if chat_id not in self.chats:
            raise bad_request("chat not found")
        return {
            **self.chats[chat_id],
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    def _check_reply(self, chat_id: int, p: dict) -> None:
        reply = p.get("reply_parameters") or (
            {"message_id": p["reply_to_message_id"]} if p.get("reply_to_message_id") else None
        )
        if reply and not reply.get("allow_sending_without_reply") and not as_bool(p, "allow_sending_without_reply"):
            reply_chat = int(reply.get("chat_id") or chat_id)
            self.stored(reply_chat, int(reply["message_id"]), "message to be replied not found")

    def api_sendmessage(self, p: dict, files: dict) -> Any:
        chat_id = as_int(p, "chat_id")
        source = str(p.get("text") or "")
        text = plain_text(
            source,
            p.get("parse_mode"),
            limit=MAX_TEXT_LENGTH,
            empty="message text is empty",
            too_long="message is too long",
        )
        markup = check_reply_markup(p.get("reply_markup"))
        self._check_reply(chat_id, p)
        body: dict[str, Any] = {"from": self.bot_user, "text": text}
        if markup:
            body["reply_markup"] = markup
        return copy.deepcopy(self._store(chat_id, body, from_bot=True, source=source))

    def api_senddocument(self, p: dict, files: dict) -> Any:
        chat_id = as_int(p, "chat_id")
        document = p.get("document")
        upload = (
            files.get(document[len("attach://") :])
            if isinstance(document, str) and document.startswith("attach://")
            else files.get("document")
        )
        if upload is None and not (isinstance(document, str) and document):
            raise bad_request("there is no document in the request")
        source = str(p.get("caption") or "")
        caption = plain_text(
            source, p.get("parse_mode"), limit=MAX_CAPTION_LENGTH, empty="", too_long="message caption is too long"
        )
        markup = check_reply_markup(p.get("reply_markup"))
        self._check_reply(chat_id, p)
        number = next(self._file_ids)
        info: dict[str, Any] = {"file_id": f"fake-file-{number}", "file_unique_id": f"fake-unique-{number}"}
        if upload is not None:
            info.update(file_name=upload["file_name"], mime_type=upload["mime_type"], file_size=len(upload["content"]))
        body: dict[str, Any] = {"from": self.bot_user, "document": info}
        if caption:
            body["caption"] = caption
        if markup:
            body["reply_markup"] = markup
        message = self._store(chat_id, body, from_bot=True, source=source)
        self.documents.append(
            {
                "chat_id": chat_id,
                "message_id": message["message_id"],
                "file_name": upload["file_name"] if upload else None,
                "mime_type": upload["mime_type"] if upload else None,
                "content": upload["content"] if upload else None,
                "file_id": info["file_id"] if upload else document,
                "caption": caption or None,
            }
        )
        return copy.deepcopy(message)

    def _editable(self, p: dict, missing: str = "message to edit not found") -> StoredMessage:
        if p.get("inline_message_id"):
            raise ApiError(400, "fake: inline messages are not implemented")
        chat_id = as_int(p, "chat_id")
        stored = self.stored(chat_id, as_int(p, "message_id"), missing)
        if not stored.from_bot:
            raise bad_request("message can't be edited")
        return stored

    def _edited(self, stored: StoredMessage, body: dict[str, Any], markup: dict | None, source: str | None) -> Any:
        # Telegram: an edit without reply_markup removes the inline keyboard.
        same = stored.message.get("reply_markup") == markup and all(stored.message.get(k) == v for k, v in body.items())
        if same and (source is None or source == stored.source):
            raise bad_request(NOT_MODIFIED)
        stored.message.update(body)
        if source is not None:
            stored.source = source
        if markup:
            stored.message["reply_markup"] = markup
        else:
            stored.message.pop("reply_markup", None)
        stored.message["edit_date"] = int(time.time())
        return copy.deepcopy(stored.message)

    def api_editmessagetext(self, p: dict, files: dict) -> Any:
        stored = self._editable(p)
        if "text" not in stored.message:
            raise bad_request("there is no text in the message to edit")
        source = str(p.get("text") or "")
        text = plain_text(
            source,
            p.get("parse_mode"),
            limit=MAX_TEXT_LENGTH,
            empty="message text is empty",
            too_long="message is too long",
        )
        return self._edited(stored, {"text": text}, check_reply_markup(p.get("reply_markup")), source)

    def api_editmessagereplymarkup(self, p: dict, files: dict) -> Any:
        stored = self._editable(p)
        return self._edited(stored, {}, check_reply_markup(p.get("reply_markup")), None)

    def api_deletemessage(self, p: dict, files: dict) -> Any:
        stored = self.stored(as_int(p, "chat_id"), as_int(p, "message_id"), "message to delete not found")
        stored.deleted = True
        return True

    def api_answercallbackquery(self, p: dict, files: dict) -> Any:
        query = self.callback_queries.get(str(p.get("callback_query_id") or ""))
        if query is None or query["answered"]:
            raise bad_request(QUERY_INVALID)
        if len(str(p.get("text") or "")) > MAX_CALLBACK_ANSWER_LENGTH:
            raise bad_request("MESSAGE_TOO_LONG")
        query["answered"] = True
        return True

    def dispatch(self, method: str, params: dict, files: dict) -> Any:
        handler = getattr(self, "api_" + method.lower(), None)
        if handler is None:
            raise ApiError(400, f"fake: method {method} not implemented")  # not 404: PTB maps 404 to InvalidToken
        with self.lock:
            return handler(params, files)
