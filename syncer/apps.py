from django.apps import AppConfig


class SyncerConfig(AppConfig):
    name = "syncer"
    verbose_name = "vcluster syncer"
