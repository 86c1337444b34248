"""Errors raised by service functions, turned into 400s by the API and form errors by pages."""

from django.core.exceptions import ValidationError


class QuotaExceeded(ValidationError):
    """A create that would push a team past one of its limits."""

    code = "quota_exceeded"


def invalid(field: str, message: str) -> ValidationError:
    return ValidationError({field: [message]})


class NotReady(Exception):
    """Something that exists only once a vcluster is Ready, asked for earlier."""
