from django.apps import AppConfig


class LocalKubeConfig(AppConfig):
    name = "localkube"
    verbose_name = "Local Kubernetes clusters"
