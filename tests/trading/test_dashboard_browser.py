"""The live dashboard in a real browser: a fill on the fake BingX appears on the open page without a reload.

Set-up, and why:
- Browser: Debian's Chromium (/usr/bin/chromium) driven by Playwright's Python package; no browser download.
- Server: uvicorn serving ``tvbingx.asgi:application`` in a thread of the test process, on a free port. In
  process, it uses the test database and settings as they are (a subprocess would need them passed over,
  and cannot reach SQLite's in-memory test database). ``transactional_db``, so the server's own
  connections see the rows the test commits.
- Channel layer: Redis. The events are published from the test's thread, the consumer listens on
  uvicorn's event loop; the in-memory layer is a set of asyncio queues bound to one loop and is not safe
  across threads, while Redis is what production runs anyway.

Skipped, saying why, when Chromium, Playwright or Redis is missing; under CI=true it must run (.ci/run
installs Chromium, requirements/dev.txt has Playwright).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import threading
import time

import pytest
from django.db import connection

from tests.conftest import _missing
from tests.factories import UserFactory
from tests.trading.test_dashboard import BTC, live_account_create, rest_a_limit_entry
from trading.execution import orders_poll

pytestmark = [
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
    # WhiteNoise hands Django a synchronous file iterator; harmless under uvicorn.
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators"),
]

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct-horse-battery"  # UserFactory's
WAIT_MS = 10_000


@pytest.fixture
def chromium():
    if importlib.util.find_spec("playwright") is None:
        _missing("needs Playwright: pip install -r requirements/dev.txt -c requirements/constraints.txt")
    if not os.access(CHROMIUM, os.X_OK):
        _missing(f"needs Debian's Chromium at {CHROMIUM}: apt-get install -y --no-install-recommends chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def redis_channel_layer(settings, redis_url):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_url], "prefix": f"test-dashboard-{time.time_ns()}"},
        }
    }


@pytest.fixture
def asgi_server(redis_channel_layer):
    """The platform's ASGI application under uvicorn, in a thread; yields its base URL."""
    import uvicorn

    from tvbingx.asgi import application

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(application, lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)
    listener.close()


def in_thread(function, **kwargs):
    """Run database work off the main thread: Playwright's sync API keeps an event loop running there,
    which Django refuses to run the ORM next to."""
    result, errors = [], []

    def run():
        try:
            result.append(function(**kwargs))
        except BaseException as error:  # re-raised in the test
            errors.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    if errors:
        raise errors[0]
    return result[0] if result else None


@pytest.fixture
def live_account(on_bingx):
    return live_account_create()


@pytest.fixture
def resting_entry(live_account):
    UserFactory(username="trader", is_staff=True)
    return rest_a_limit_entry(account=live_account)


# The browser comes last: once Playwright runs, the ORM only works off the main thread (see in_thread).
def test_a_fill_on_bingx_appears_on_the_open_dashboard_without_a_reload(
    bingx, live_account, resting_entry, asgi_server, chromium
):
    from playwright.sync_api import expect

    page = chromium.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(f"{asgi_server}/admin/dashboard/")
    page.fill("#id_username", "trader")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/dashboard/")
    expect(page.locator("#dash-connection")).to_have_text("live")
    account = page.locator('section.dash-account[data-account="live"]')
    expect(account).to_contain_text("No open positions.")
    expect(account.locator("tr.dash-order")).to_contain_text("Limit")
    page.evaluate("window.__sameDocument = true")

    bingx.set_mark_price("BTC-USDT", "63900")  # through the resting buy at 64,000
    in_thread(orders_poll, account=live_account)

    position = account.locator(f'tr.dash-position[data-symbol="{BTC}"][data-side="long"]')
    expect(position).to_contain_text("LONG")
    expect(position).to_contain_text("64,000")  # the entry
    expect(position).to_contain_text("SL 63,000")  # placed just after the fill
    expect(position).to_contain_text("5x isolated")
    assert page.evaluate("window.__sameDocument") is True  # updated in place, never reloaded
