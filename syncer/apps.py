from django.apps import AppConfig


class SyncerAppConfig(AppConfig):
    name = "syncer"
    verbose_name = "vcluster syncer"
