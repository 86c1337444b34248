"""Helpers shared by the HTML views."""

from django.core.exceptions import ValidationError
from django.core.paginator import Paginator


def add_service_errors(form, exc: ValidationError) -> None:
    """Show a service's ValidationError on the form fields it names."""
    for field, messages in exc.message_dict.items() if hasattr(exc, "error_dict") else [(None, exc.messages)]:
        for message in messages:
            form.add_error(field if field in form.fields else None, message)


def paginate(request, queryset, per_page: int):
    return Paginator(queryset, per_page).get_page(request.GET.get("page"))


def query_without_page(request) -> str:
    params = request.GET.copy()
    params.pop("page", None)
    return params.urlencode()
