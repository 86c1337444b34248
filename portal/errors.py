"""Errors raised by service functions, turned into 400s by the API and form errors by pages."""

from django.core.exceptions import ValidationError
from django.db import OperationalError

# What a client is told to wait before trying again when the database is busy.
BUSY_RETRY_AFTER = 2


class QuotaExceeded(ValidationError):
    """A create that would push a team past one of its limits."""

    code = "quota_exceeded"


def invalid(field: str, message: str) -> ValidationError:
    return ValidationError({field: [message]})


class NotReady(Exception):
    """Something that exists only once a vcluster is Ready, asked for earlier."""


def is_database_busy(exc: BaseException) -> bool:
    """The embedded database (SQLite) stayed locked by another writer past its busy
    timeout: worth trying again, never a server error."""
    return isinstance(exc, OperationalError) and "locked" in str(exc)
