from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts import resources
from accounts.api import validated
from accounts.audit import Actor
from accounts.models import Team
from portal.errors import invalid

from . import services
from .lifecycle import Phase
from .models import VCluster, VClusterEvent, VClusterStep


SHOWN_FIELDS = [f.name for f in VCluster._meta.concrete_fields if f.name != "kubeconfig"]
# The placement as the detail shows it; never the host cluster's kubeconfig.
PLACEMENT_FIELDS = ["placement__host_namespace", "placement__runtime", "placement__receipt",
                    "placement__host_cluster__name"]


class StepSerializer(serializers.ModelSerializer):
    duration = serializers.SerializerMethodField(help_text="Seconds from start to finish; null until finished.")

    class Meta:
        model = VClusterStep
        fields = ["name", "status", "started_at", "finished_at", "duration", "message"]

    def get_duration(self, step) -> float | None:
        seconds = step_seconds(step)
        return None if seconds is None else round(seconds, 3)


def step_seconds(step) -> float | None:
    if step.started_at is None or step.finished_at is None:
        return None
    return max((step.finished_at - step.started_at).total_seconds(), 0.0)


class EventSerializer(serializers.ModelSerializer):
    class Meta:
        model = VClusterEvent
        fields = ["kind", "message", "created_at"]


class PlacementSerializer(serializers.Serializer):
    host_cluster = serializers.CharField(source="host_cluster.name", allow_null=True, default=None,
                                         help_text="null once the host cluster has been removed.")
    host_namespace = serializers.CharField()
    runtime = serializers.CharField(help_text="Where its control plane and syncer run: kubernetes (pods in the host "
                                    "namespace) or local (processes on a worker); kept from its host cluster's "
                                    "runtime when it was placed.")


class ReceiptStepSerializer(serializers.Serializer):
    step = serializers.CharField()
    done = serializers.CharField(help_text="What the step removed or checked.")


class ReceiptSerializer(serializers.Serializer):
    steps = ReceiptStepSerializer(many=True)
    finished_at = serializers.DateTimeField()


def placement_of(vcluster):
    """The vcluster's Placement, or None before provisioning placed it."""
    return getattr(vcluster, "placement", None)


class VClusterSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    cpu = serializers.SerializerMethodField()
    memory = serializers.SerializerMethodField()
    storage = serializers.SerializerMethodField()
    in_progress = serializers.BooleanField(
        source="lifecycle.in_progress", read_only=True,
        help_text="Work is under way (provisioning or teardown): the phase will change by itself. "
                  "Once false, the phase stays until someone acts.")
    retryable = serializers.BooleanField(
        source="failed", read_only=True,
        help_text="Its provisioning or teardown gave up and waits for a person: POST retry/ resumes it.")

    class Meta:
        model = VCluster
        fields = ["id", "name", "team", "kubernetes_version", "cpu", "memory", "storage", "pods", "phase",
                  "in_progress", "retryable", "message", "created_by", "created_at", "updated_at", "deleted_at"]

    def get_cpu(self, vcluster) -> str:
        return resources.BY_NAME["cpu"].format(vcluster.cpu_millicores)

    def get_memory(self, vcluster) -> str:
        return resources.BY_NAME["memory"].format(vcluster.memory_bytes)

    def get_storage(self, vcluster) -> str:
        return resources.BY_NAME["storage"].format(vcluster.storage_bytes)


class VClusterDetailSerializer(VClusterSerializer):
    steps = StepSerializer(many=True, read_only=True)
    placement = serializers.SerializerMethodField(help_text="Where it runs; null until provisioning placed it.")
    events = EventSerializer(many=True, read_only=True, help_text="Repairs, retries and failures, newest first.")
    receipt = serializers.SerializerMethodField(help_text="What teardown removed and checked; null until Deleted.")

    class Meta(VClusterSerializer.Meta):
        fields = [*VClusterSerializer.Meta.fields, "steps", "placement", "events", "receipt"]

    @extend_schema_field(PlacementSerializer(allow_null=True))
    def get_placement(self, vcluster):
        placement = placement_of(vcluster)
        return None if placement is None else PlacementSerializer(placement).data

    @extend_schema_field(ReceiptSerializer(allow_null=True))
    def get_receipt(self, vcluster):
        placement = placement_of(vcluster)
        return None if placement is None else placement.receipt


class VClusterCreateSerializer(serializers.Serializer):
    team = serializers.CharField(help_text="The team's slug.")
    name = serializers.CharField(help_text="DNS-1123 label, at most 40 characters, unique in the team.")
    kubernetes_version = serializers.CharField(required=False, help_text="One of the supported versions.")
    cpu = serializers.CharField(required=False, help_text='Kubernetes notation, e.g. "2" or "500m".')
    memory = serializers.CharField(required=False, help_text='Kubernetes notation, e.g. "4Gi".')
    storage = serializers.CharField(required=False, help_text='Kubernetes notation, e.g. "10Gi".')
    pods = serializers.CharField(required=False, help_text="Maximum number of pods, e.g. 50.")


class VClusterFilter(filters.FilterSet):
    team = filters.CharFilter(field_name="team__slug", help_text="Team slug.")
    phase = filters.ChoiceFilter(choices=Phase.choices, help_text="Deleted vclusters are listed only when asked for.")

    class Meta:
        model = VCluster
        fields = ["team", "phase"]


@extend_schema_view(
    list=extend_schema(summary="Vclusters of your teams"),
    retrieve=extend_schema(summary="A vcluster, with its progress steps"),
)
class VClusterViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    filterset_class = VClusterFilter

    def get_queryset(self):
        vclusters = VCluster.objects.restrict(self.request.user, "view").select_related("team", "created_by")
        # Only what the serializers show: no secrets decrypted, no password hashes loaded.
        vclusters = vclusters.only(*SHOWN_FIELDS, "team__slug", "team__name", "created_by__username")
        if self.action == "list" and "phase" not in self.request.query_params:
            vclusters = vclusters.exclude(phase=Phase.DELETED)
        if self.action == "retrieve":
            vclusters = vclusters.select_related("placement__host_cluster").prefetch_related("steps", "events")
            vclusters = vclusters.only(*SHOWN_FIELDS, "team__slug", "team__name", "created_by__username",
                                       *PLACEMENT_FIELDS)
        return vclusters

    def get_serializer_class(self):
        return VClusterDetailSerializer if self.action in {"retrieve", "retry"} else VClusterSerializer

    @extend_schema(summary="Create a vcluster (within the team's quota)", request=VClusterCreateSerializer,
                   responses={201: VClusterDetailSerializer})
    def create(self, request):
        data = dict(validated(VClusterCreateSerializer, request))
        team = Team.objects.restrict(request.user, "view").filter(slug=data.pop("team")).first()
        if team is None:
            raise invalid("team", "No such team among yours.")
        vcluster = services.create_vcluster(Actor.from_request(request), team, **data)
        vcluster = self.get_queryset().get(pk=vcluster.pk)
        return Response(VClusterDetailSerializer(vcluster).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Delete a vcluster (it goes Deleting, then Deleted once torn down)", request=None,
                   responses={202: VClusterDetailSerializer})
    def destroy(self, request, pk=None):
        vcluster = services.delete_vcluster(Actor.from_request(request), self.get_object())
        return Response(VClusterDetailSerializer(vcluster).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(summary="Retry a Failed or DeleteFailed vcluster (members, team admins): provisioning or "
                   "teardown resumes at the failed step",
                   request=None, responses={202: VClusterDetailSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        vcluster = services.retry_vcluster(Actor.from_request(request), self.get_object())
        return Response(VClusterDetailSerializer(vcluster).data, status=status.HTTP_202_ACCEPTED)


def kubeconfig_filename(vcluster: VCluster, suffix: str) -> str:
    """The download's file name: whose kubeconfig it is (a username, or "admin")."""
    return f"{vcluster.team.slug}-{vcluster.name}-{suffix}.kubeconfig"
