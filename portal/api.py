"""API plumbing shared by every endpoint: pagination, YAML downloads, the error format.

Every error body has the same shape:
    {"message": "...", "code": "...", "errors": {"field": ["..."]}}
"""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, ValidationError as DjangoValidationError
from django.http import JsonResponse
from django.views.defaults import page_not_found
from rest_framework import status
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.renderers import BaseRenderer
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from portal.errors import (BUSY_MESSAGE, BUSY_RETRY_AFTER, NotReady, QuotaExceeded, is_database_unavailable,
                           log_database_unavailable)


class YAMLRenderer(BaseRenderer):
    media_type = "application/yaml"
    format = "yaml"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        import yaml

        return data.encode() if isinstance(data, str) else yaml.safe_dump(data).encode()


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request):
        """As DRF's, but a page_size that is not a positive number is refused, not ignored."""
        raw = request.query_params.get(self.page_size_query_param)
        if raw is not None and not (raw.isascii() and raw.isdigit() and int(raw) > 0):
            raise ValidationError({self.page_size_query_param: ["Must be a whole number from 1."]})
        return super().get_page_size(request)


def not_found(request, exception):
    """Django's 404 for URLs no route matches: the API's error shape under /api/."""
    if not request.path.startswith("/api/"):
        return page_not_found(request, exception)
    return JsonResponse(_error_body("Not found.", "not_found", {}), status=status.HTTP_404_NOT_FOUND)


def _error_body(message: str, code: str, errors: dict) -> dict:
    return {"message": message, "code": code, "errors": errors}


def _field_errors(detail) -> dict:
    if isinstance(detail, dict):
        return {field: [str(m) for m in (msgs if isinstance(msgs, list) else [msgs])] for field, msgs in detail.items()}
    return {"non_field_errors": [str(m) for m in (detail if isinstance(detail, list) else [detail])]}


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        if isinstance(exc, QuotaExceeded):
            message = " ".join(m for msgs in errors.values() for m in msgs)
            return Response(_error_body(message, "quota_exceeded", errors), status=status.HTTP_400_BAD_REQUEST)
        message = f"Invalid input: {', '.join(sorted(errors))}."
        return Response(_error_body(message, "invalid", errors), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, RequestDataTooBig):
        message = f"Request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."
        return Response(_error_body(message, "body_too_large", {"body": [message]}), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, NotReady):
        return Response(_error_body(str(exc), "not_ready", {}), status=status.HTTP_409_CONFLICT)
    if is_database_unavailable(exc):
        log_database_unavailable(exc)
        return Response(_error_body(BUSY_MESSAGE, "busy", {}), status=status.HTTP_503_SERVICE_UNAVAILABLE,
                        headers={"Retry-After": str(BUSY_RETRY_AFTER)})
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, ValidationError):
        errors = _field_errors(exc.detail)
        response.data = _error_body(f"Invalid input: {', '.join(sorted(errors))}.", "invalid", errors)
    elif isinstance(exc, ParseError):
        response.data = _error_body(str(exc.detail), exc.detail.code, {"body": [str(exc.detail)]})
    else:
        # DRF's handler has turned Django's Http404 and PermissionDenied into its own.
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else ""
        code = getattr(detail, "code", "error")
        response.data = _error_body(str(detail), code, {})
    return response
