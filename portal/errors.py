"""Errors raised by service functions, turned into 400s by the API and form errors by pages."""

import logging

from django.core.exceptions import ValidationError
from django.db import InterfaceError, OperationalError

logger = logging.getLogger(__name__)
# What a client is told, and how long to wait before trying again, when the database
# cannot serve its request.
BUSY_MESSAGE = "The portal's database is busy or unavailable; nothing was changed. Try again in a moment."
BUSY_RETRY_AFTER = 2
# SQLite reports programming errors (no such table) as OperationalError too; these are
# the ones about the database's state: locked past the busy timeout, disk full or gone.
SQLITE_UNAVAILABLE = ("database is locked", "database table is locked", "disk is full", "disk I/O error",
                      "unable to open database file")


class QuotaExceeded(ValidationError):
    """A create that would push a team past one of its limits."""

    code = "quota_exceeded"


def invalid(field: str, message: str) -> ValidationError:
    return ValidationError({field: [message]})


class NotReady(Exception):
    """Something that exists only once a vcluster is Ready, asked for earlier."""


def is_database_unavailable(exc: BaseException) -> bool:
    """The database could not serve this request, which therefore changed nothing: SQLite
    locked by another writer past its busy timeout, or its disk full; PostgreSQL
    unreachable, restarting, or dropping the connection (psycopg calls every such state
    of the server OperationalError, its programming errors otherwise). Worth trying
    again, never a server error."""
    if not isinstance(exc, (OperationalError, InterfaceError)):
        return False
    if type(exc.__cause__).__module__.startswith("psycopg"):
        return True
    return any(words in str(exc) for words in SQLITE_UNAVAILABLE)


def log_database_unavailable(exc: BaseException) -> None:
    """Why a request answered 503: the operator's clue (a full disk, a restarting server)."""
    logger.warning("the database could not serve a request, which answered 503: %s", exc)
