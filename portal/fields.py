"""EncryptedTextField: text encrypted at rest with MultiFernet.

Keys come from settings.FIELD_ENCRYPTION_KEYS, newest first: values are written
with the newest key and read with any, so keys rotate by prepending a new one and
re-saving rows (MultiFernet.rotate) before dropping the old.
"""

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.FIELD_ENCRYPTION_KEYS))


class EncryptedTextField(models.TextField):
    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        return fernet().encrypt(value.encode()).decode()

    def from_db_value(self, value, expression, connection):
        if value in (None, ""):
            return value
        try:
            return fernet().decrypt(value.encode()).decode()
        except InvalidToken:
            # Never fall back to returning ciphertext or logging it.
            raise ValueError(f"{self.model.__name__}.{self.name}: no key in FIELD_ENCRYPTION_KEYS decrypts this value") from None
