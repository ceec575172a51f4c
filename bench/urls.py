"""The project's URLs plus POST /bench/baseline, served by the same stack as the webhook.

The baseline is the floor the webhook is compared with: the same uvicorn, Django middleware and DRF
APIView (no authentication, no parsers), doing only one raw INSERT of the body and a 202 JSON answer.
Its table, bench_raw_body, is created by bench/webhook_latency.py in the benchmark's own database.
"""

from django.db import connection
from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from tvbingx.urls import urlpatterns as project_urlpatterns


class BaselineApi(APIView):
    """Stores the raw body and answers 202: what any webhook must do at the least."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes: list = []

    def post(self, request):
        body = request._request.body.decode("utf-8", errors="replace")
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO bench_raw_body (body) VALUES (%s) RETURNING id", [body])
            (row_id,) = cursor.fetchone()
        return Response({"id": row_id, "status": "stored"}, status=202)


urlpatterns = [
    path("bench/baseline", BaselineApi.as_view(), name="bench-baseline"),
    *project_urlpatterns,
]
