"""Housekeeping for the gateway, run by Celery beat (portal.settings CELERY_BEAT_SCHEDULE)."""

import logging

from celery import shared_task

from .services import prune_tokens

logger = logging.getLogger(__name__)


@shared_task
def prune_access_tokens() -> int:
    deleted = prune_tokens()
    if deleted:
        logger.info("gateway: deleted %d expired or revoked access tokens", deleted)
    return deleted
