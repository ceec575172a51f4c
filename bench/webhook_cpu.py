"""CPU per request of the webhook and the baseline, in-process and deterministic (no HTTP client, no load).

    .venv/bin/python bench/webhook_cpu.py                  # 2000 requests each, CPU ms per request
    .venv/bin/python bench/webhook_cpu.py --parts          # plus CPU ms per request in each part, and per thread
    .venv/bin/python bench/webhook_cpu.py --profile 30     # plus the top 30 functions of the webhook (cProfile)
    .venv/bin/python bench/webhook_cpu.py --queries        # plus the SQL of one webhook request

Recreates the database tvbingx_cpu (PostgreSQL at 127.0.0.1:5432 as postgres), migrates and bootstraps it with
the environment bench/webhook_latency.py gives its server, then sends the same alert bodies through Django's
WSGI handler (middleware, request signals, the connection pool) in this process. time.process_time counts every
thread of the process (the hand-over and event threads too), as the server's one GIL does. Drops the database
and flushes Redis db 13 at the end. What uvicorn and the ASGI-to-thread hand-off add per request (about 2 ms on
the development machine) is not in these figures: it is the same for both endpoints.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import webhook_latency as latency  # noqa: E402

DB_NAME = "tvbingx_cpu"
DB_URL = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
REDIS_URL = "redis://127.0.0.1:6379/13"


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(latency.PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


def prepare(token: str) -> dict[str, str]:
    _admin(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    _admin(f"CREATE DATABASE {DB_NAME}")
    env = latency.server_env(token, "bench.settings")
    env.update(DATABASE_URL=DB_URL, REDIS_URL=REDIS_URL)
    for command in (("migrate", "--noinput"), ("bootstrap",)):
        subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True)
    import psycopg

    with psycopg.connect(DB_URL.replace("postgres://", "postgresql://"), autocommit=True) as conn:
        conn.execute(latency.BASELINE_TABLE_SQL)
    return env


def bodies(token: str, count: int, tag: str) -> list[bytes]:
    sent_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    alerts = latency.AlertBodies(token, tag)
    result = []
    for _ in range(count):
        body = json.loads(alerts())
        body["sent_at"] = sent_at
        result.append(json.dumps(body).encode())
    return result


def run(handler, factory, path: str, payloads: list[bytes], expect: int) -> float:
    """CPU seconds for all payloads through the WSGI handler."""
    environs = [factory.post(path, data=body, content_type="application/json").environ for body in payloads]
    start = time.process_time()
    for environ in environs:
        status = []
        response = handler(environ, lambda s, h, status=status: status.append(s))
        b"".join(response)
        response.close()
        if not status[0].startswith(str(expect)):
            raise SystemExit(f"{path}: {status[0]} {b''.join(response)!r}")
    return time.process_time() - start


PARTS = (
    # (module, attribute): inclusive CPU time of the main thread in each, per request
    ("signals_app.apis", "TradingViewWebhookApi.post"),
    ("signals_app.apis", "signal_ingest"),
    ("signals_app.ingest", "parse_body"),
    ("signals_app.ingest", "account_for_secret"),
    ("signals_app.ingest", "normalise_alert"),
    ("signals_app.ingest", "_resolve_symbol"),
    ("signals_app.ingest", "_stale_problem"),
    ("signals_app.ingest", "_idempotency_keys"),
    ("signals_app.ingest", "_store"),
    ("signals_app.payload", "NormalisedAlert.fingerprint"),
    ("signals_app.ingest", "_signal_fields"),
    ("signals_app.ingest", "audit_event_new"),
    ("signals_app.ingest", "_insert"),
    ("signals_app.ingest", "publish"),
    ("signals_app.ingest", "_response"),
    ("signals_app.apis", "signals_dispatch"),
    ("django.db.models.base", "Model.__init__"),
    ("django.db.backends.utils", "CursorWrapper._execute"),
    ("django.db.backends.base.base", "BaseDatabaseWrapper.commit"),
    ("django.db.backends.base.base", "BaseDatabaseWrapper.connect"),
    ("django.db.backends.base.base", "BaseDatabaseWrapper.close"),
    ("django.db.transaction", "Atomic.__enter__"),
    ("django.db.transaction", "Atomic.__exit__"),
    ("rest_framework.views", "APIView.initial"),
    ("rest_framework.views", "APIView.finalize_response"),
    ("rest_framework.views", "APIView.initialize_request"),
    ("rest_framework.response", "Response.rendered_content"),
)


def parts_print(handler, factory, token: str, count: int) -> None:
    import importlib
    from collections import defaultdict

    totals: dict[str, float] = defaultdict(float)
    depth: dict[str, int] = defaultdict(int)
    patched = []

    def wrap(label, function):
        def timed(*args, **kwargs):
            depth[label] += 1
            start = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                depth[label] -= 1
                if not depth[label]:
                    totals[label] += time.thread_time() - start

        return timed

    for module_name, attribute in PARTS:
        owner = importlib.import_module(module_name)
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        original = owner.__dict__[name]
        label = f"{module_name.rsplit('.', 1)[-1]}.{attribute}"
        if isinstance(original, property):
            setattr(owner, name, property(wrap(label, original.fget)))
        else:
            setattr(owner, name, wrap(label, original))
        patched.append((owner, name, original))
    import threading

    def thread_cpu() -> dict[str, float]:
        return {
            thread.name: time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
            for thread in threading.enumerate()
            if thread is not threading.main_thread()
        }

    try:
        before = thread_cpu()
        start = time.thread_time()
        run(handler, factory, latency.WEBHOOK_PATH, bodies(token, count, "parts"), 202)
        total = time.thread_time() - start
        from signals_app.dispatch import lanes_wait_idle

        lanes_wait_idle()
        time.sleep(0.5)
        after = thread_cpu()
    finally:
        for owner, name, original in reversed(patched):
            setattr(owner, name, original)
    print(f"{'whole request (main thread)':55} {total / count * 1000:7.3f} ms")
    for name, cpu in after.items():
        print(f"{'thread ' + name:55} {(cpu - before.get(name, 0.0)) / count * 1000:7.3f} ms")
    for module_name, attribute in PARTS:
        label = f"{module_name.rsplit('.', 1)[-1]}.{attribute}"
        print(f"{label:55} {totals[label] / count * 1000:7.3f} ms")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--profile", type=int, default=0, help="print the top N functions of the webhook")
    parser.add_argument("--parts", action="store_true", help="CPU ms per request of the webhook's parts")
    parser.add_argument("--queries", action="store_true", help="print the SQL of one webhook request")
    parser.add_argument("--sort", default="cumulative")
    args = parser.parse_args()
    token = "wh_cpu_" + os.urandom(12).hex()
    env = prepare(token)
    os.environ.update(env)
    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import RequestFactory

    from signals_app.dispatch import lanes_wait_idle

    handler, factory = WSGIHandler(), RequestFactory(HTTP_HOST="127.0.0.1")
    try:
        run(handler, factory, latency.WEBHOOK_PATH, bodies(token, 200, "warm"), 202)
        run(handler, factory, latency.BASELINE_PATH, bodies(token, 200, "warm"), 202)
        lanes_wait_idle()
        figures = {}
        for round_ in range(2):
            for name, path in (("webhook", latency.WEBHOOK_PATH), ("baseline", latency.BASELINE_PATH)):
                cpu = run(handler, factory, path, bodies(token, args.n, f"{name}{round_}"), 202)
                lanes_wait_idle()
                figures.setdefault(name, []).append(cpu / args.n * 1000)
        for name, values in figures.items():
            print(f"{name:9} CPU ms/request: " + "  ".join(f"{value:.3f}" for value in values))
        print(f"ratio baseline/webhook CPU: {min(figures['baseline']) / min(figures['webhook']):.2f}")
        if args.parts:
            parts_print(handler, factory, token, args.n)
        if args.queries:
            from django.db import connection
            from django.test.utils import CaptureQueriesContext

            with CaptureQueriesContext(connection) as captured:
                run(handler, factory, latency.WEBHOOK_PATH, bodies(token, 1, "queries"), 202)
            for query in captured.captured_queries:
                print("SQL:", query["sql"][:300])
        if args.profile:
            profiler = cProfile.Profile(time.process_time)  # CPU, not wall time (round trips)
            payloads = bodies(token, args.n, "profile")
            profiler.enable()
            run(handler, factory, latency.WEBHOOK_PATH, payloads, 202)
            lanes_wait_idle()
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(args.profile)
            print(out.getvalue())
    finally:
        from django.db import connections

        connections.close_all()
        import redis

        redis.Redis.from_url(REDIS_URL).flushdb()
        _admin(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
