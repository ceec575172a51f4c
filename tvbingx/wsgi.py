"""WSGI entry point, for plain HTTP hosting; WebSockets need tvbingx.asgi."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tvbingx.settings")

application = get_wsgi_application()
