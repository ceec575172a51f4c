"""The TradingView webhook: transport checks here, everything else in signals_app.ingest."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import DatabaseError
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from signals_app.dispatch import signals_dispatch
from signals_app.ingest import signal_ingest
from signals_app.serializers import TradingViewAlertSerializer, WebhookResponseSerializer
from signals_app.webhook_security import auth_failure_record, auth_failures_exceeded, client_ip, ip_allowed

logger = logging.getLogger(__name__)


class TradingViewWebhookApi(APIView):
    """Receives TradingView alerts. The secret comes in the body, the URL or the X-TRADINGVIEW-TOKEN header."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes: list = []  # the raw body is read and stored as it came

    @extend_schema(
        operation_id="webhook_tradingview",
        summary="Receive a TradingView alert",
        description=(
            "Stores the alert and answers at once; processing (risk checks, orders) happens after the answer. "
            "TradingView sends the alert message as the body: JSON, as application/json or text/plain. "
            "Authenticate with the body field `secret`, the URL token, or the `X-TRADINGVIEW-TOKEN` header."
        ),
        # TradingView posts valid JSON as text/plain too.
        request={"application/json": TradingViewAlertSerializer, "text/plain": TradingViewAlertSerializer},
        responses={
            202: OpenApiResponse(WebhookResponseSerializer, description="Stored; processing follows."),
            200: OpenApiResponse(WebhookResponseSerializer, description="Duplicate: the alert_id was seen before."),
            400: OpenApiResponse(
                WebhookResponseSerializer,
                description="Invalid: stored as a rejected signal; `errors` lists every problem.",
            ),
            401: OpenApiResponse(description="Missing or wrong secret; nothing stored."),
            403: OpenApiResponse(description="Source address not on the allowlist."),
            409: OpenApiResponse(WebhookResponseSerializer, description="The alert_id was used for a different alert."),
            413: OpenApiResponse(description="Body over 64 KiB."),
            429: OpenApiResponse(description="Too many failed secrets from this address."),
            503: OpenApiResponse(description="The database is unreachable; the alert was not stored. Retry."),
        },
        examples=[
            OpenApiExample(
                "Market long with SL and two TPs",
                value={
                    "secret": "wh_...",
                    "alert_id": "ema|{{ticker}}|{{interval}}|{{time}}",
                    "sent_at": "{{timenow}}",
                    "symbol": "{{ticker}}",
                    "action": "buy",
                    "size": {"mode": "usdt", "value": "100"},
                    "leverage": 5,
                    "sl": {"pct": "1.5"},
                    "tp": [{"pct": "1", "size_pct": 50}, {"pct": "2.5", "size_pct": 50}],
                },
                request_only=True,
            )
        ],
    )
    def post(self, request, token: str | None = None):
        http = request._request
        ip = client_ip(
            remote_addr=http.META.get("REMOTE_ADDR"),
            forwarded_for=http.META.get("HTTP_X_FORWARDED_FOR"),
            trusted_proxies=settings.WEBHOOK_TRUSTED_PROXIES,
        )
        limit = settings.WEBHOOK_MAX_BODY_BYTES
        declared = http.META.get("CONTENT_LENGTH") or "0"
        if (declared.isdigit() and int(declared) > limit) or len(http.body) > limit:
            return _unlogged(Response({"error": f"body too large: at most {limit} bytes"}, status=413))
        if settings.WEBHOOK_IP_ALLOWLIST_ENABLED and not ip_allowed(ip, settings.WEBHOOK_IP_ALLOWLIST):
            logger.warning("webhook refused: %s is not on the allowlist", ip)
            return _unlogged(Response({"error": "forbidden: source address not allowed"}, status=403))
        if auth_failures_exceeded(ip, settings.WEBHOOK_AUTH_FAILURES_PER_MINUTE):
            return _unlogged(Response({"error": "too many failed attempts; try again in a minute"}, status=429))
        try:
            # http.headers is case-insensitive, as HTTP header names are.
            result = signal_ingest(raw_body=http.body, headers=http.headers, source_ip=ip, url_token=token)
        except DatabaseError:
            logger.exception("webhook: the alert could not be stored")
            return _unlogged(Response({"error": "the alert could not be stored; retry"}, status=503))
        if result.http_status == 401:
            failures = auth_failure_record(ip)
            logger.warning("webhook: wrong or missing secret from %s (%s this minute)", ip, failures)
        if result.dispatch:
            signals_dispatch(result.dispatch)
        response = Response(result.body, status=result.http_status)
        if result.http_status >= 400:
            logger.info("webhook answered %s to %s", result.http_status, ip)
            _unlogged(response)
        return response


def _unlogged(response: Response) -> Response:
    """Keep Django's request log from writing the path: it can hold the account's secret (URL token)."""
    response._has_been_logged = True
    return response


class TradingViewWebhookTokenApi(TradingViewWebhookApi):
    """The same webhook for senders that can only put the secret in the URL."""

    @extend_schema(
        operation_id="webhook_tradingview_token",
        summary="Receive a TradingView alert (secret in the URL)",
        request={"application/json": TradingViewAlertSerializer, "text/plain": TradingViewAlertSerializer},
        responses={202: WebhookResponseSerializer, 200: WebhookResponseSerializer, 400: WebhookResponseSerializer},
    )
    def post(self, request, token: str | None = None):
        return super().post(request, token=token)
