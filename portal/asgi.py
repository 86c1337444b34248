"""The ASGI entry point: Django and the Kubernetes gateway (/kube/) in one application,
served by uvicorn: `uvicorn portal.asgi:application`."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django_application = get_asgi_application()

from gateway.asgi import Router  # noqa: E402  (needs the apps loaded above)
from portal.metrics import Metrics  # noqa: E402

application = Metrics(Router(django_application))
