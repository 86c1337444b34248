from django.apps import AppConfig


class VClustersConfig(AppConfig):
    name = "vclusters"
    verbose_name = "Vclusters"
    default_auto_field = "django.db.models.BigAutoField"
