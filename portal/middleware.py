"""Middleware of the portal's own."""

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
