"""Middleware of the portal's own."""

import logging

from django.db import DatabaseError, connection
from django.http import HttpResponse

from portal.errors import BUSY_MESSAGE, BUSY_RETRY_AFTER, is_database_unavailable, log_database_unavailable


class DatabaseBusyMiddleware:
    """A page whose request the database could not serve (locked past its busy timeout,
    its disk full, its server restarting) answers 503 with Retry-After, not 500 (the
    API's handler does the same for API requests). The request's transaction was rolled
    back, so nothing changed."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not is_database_unavailable(exception):
            return None
        log_database_unavailable(exception)
        response = HttpResponse(BUSY_MESSAGE + "\n", status=503, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(BUSY_RETRY_AFTER)
        return response


class HealthMiddleware:
    """`/healthz` (the process answers: liveness) and `/readyz` (it also reaches its
    database: readiness) for the kubelet's probes. First in the list: a probe names the
    pod's address, which is in no ALLOWED_HOSTS, and must not be redirected."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path == "/healthz":
            return HttpResponse("ok\n", content_type="text/plain")
        if request.path == "/readyz":
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT 1")
            except DatabaseError as exc:
                logging.getLogger(__name__).warning("not ready: the database does not answer (%s)", exc)
                return HttpResponse("the database does not answer\n", status=503, content_type="text/plain")
            return HttpResponse("ok\n", content_type="text/plain")
        return self.get_response(request)
