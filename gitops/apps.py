from django.apps import AppConfig


class GitOpsConfig(AppConfig):
    name = "gitops"
    verbose_name = "GitOps"
    default_auto_field = "django.db.models.BigAutoField"
