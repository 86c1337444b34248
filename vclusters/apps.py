from django.apps import AppConfig


class VClustersConfig(AppConfig):
    name = "vclusters"
    verbose_name = "Vclusters"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from accounts import extensions

        from .services import usage_by_team

        extensions.provide_usage(usage_by_team)
