from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import access
from accounts.api import MayViewModel, validated, visible_team
from accounts.audit import Actor

from .. import runtimes
from . import services
from ..models import Access, HostCluster, PodSecurity


def host_clusters_for(user):
    """The host clusters the user may see (PermissionDenied if none: they are platform
    infrastructure), with their load. The kubeconfig is deferred: lists never decrypt it."""
    access.require(user, "view", HostCluster)
    hosts = HostCluster.objects.restrict(user, "view")
    return hosts.with_load().defer("kubeconfig").prefetch_related("teams").order_by("name")


class TolerationSerializer(serializers.Serializer):
    key = serializers.CharField(required=False)
    operator = serializers.ChoiceField(choices=["Equal", "Exists"], required=False, help_text="Equal when missing.")
    value = serializers.CharField(required=False)
    effect = serializers.CharField(required=False)


class TenantPolicySchema(serializers.Serializer):
    """The shape of a tenant policy, for the schema (syncer.policy checks the values)."""

    csi_drivers = serializers.ListField(child=serializers.CharField(), required=False,
                                        help_text="CSI drivers tenants may use in inline volumes.")
    tolerations = TolerationSerializer(many=True, required=False,
                                       help_text="Tolerations tenant pods may carry, matched on all fields.")
    node_label_keys = serializers.ListField(child=serializers.CharField(), required=False,
                                            help_text="Host node labels tenant pods may select on.")
    runtime_classes = serializers.ListField(child=serializers.CharField(), required=False,
                                            help_text="runtimeClassName values tenant pods may name.")
    storage_classes = serializers.ListField(child=serializers.CharField(), required=False,
                                            help_text="Host StorageClasses tenant claims may name and see; the "
                                            "host's default class always.")
    priority_classes = serializers.ListField(child=serializers.CharField(), required=False,
                                             help_text="Host PriorityClasses tenant pods may get (never system-).")
    external_name_services = serializers.BooleanField(required=False, help_text="Allow Services of type ExternalName.")
    ingress_hosts = serializers.ListField(
        child=serializers.CharField(), required=False,
        help_text="Host names tenant Ingresses may claim: exact, or `*.` for every name under one; `{team}` "
        "is the team's slug (e.g. `*.{team}.apps.example.com`). Empty: no Ingress is synced.")
    ingress_classes = serializers.ListField(child=serializers.CharField(), required=False,
                                            help_text="Host IngressClasses tenant Ingresses may name and see; the "
                                            "host's default class always.")


@extend_schema_field(TenantPolicySchema)
class TenantPolicyField(serializers.JSONField):
    """Any JSON here; the service checks it and answers 400 on `tenant_policy`."""


class HostClusterSerializer(serializers.ModelSerializer):
    teams = serializers.SlugRelatedField(
        slug_field="slug", many=True, read_only=True,
        help_text="Slugs of the teams whose vclusters may be placed here; empty: every team.",
    )
    load = serializers.IntegerField(read_only=True, help_text="Live vclusters (all but Deleted) placed here.")
    tenant_policy = TenantPolicyField(read_only=True, help_text="What tenants may ask of this host; {} allows nothing extra.")

    class Meta:
        model = HostCluster
        fields = ["name", "enabled", "in_cluster", "capacity_notes", "teams", "tenant_policy", *services.RUNTIME_FIELDS,
                  "load", "created_at"]
        read_only_fields = ["in_cluster"]
        extra_kwargs = {field: {"help_text": services.HELP[field]} for field in services.RUNTIME_FIELDS}


class HostClusterWriteSerializer(serializers.Serializer):
    """Shape only: names, team slugs and the kubeconfig are checked by the service."""

    kubeconfig = serializers.CharField(
        write_only=True, trim_whitespace=False,
        help_text="Admin kubeconfig with inline credentials (no file paths, no exec plugins). "
        "The portal connects to the cluster to check it. Stored encrypted; never returned.",
    )
    enabled = serializers.BooleanField(default=True, help_text="New vclusters are placed only on enabled host clusters.")
    capacity_notes = serializers.CharField(required=False, allow_blank=True, default="")
    teams = serializers.ListField(
        child=serializers.CharField(), required=False, default=list,
        help_text="Team slugs that may use this host cluster; empty or missing: every team.",
    )
    tenant_policy = TenantPolicyField(required=False, default=dict,
                                      help_text="What tenants may ask of this host; {} (the default) allows nothing extra.")
    runtime = serializers.ChoiceField(choices=runtimes.CHOICES, default=runtimes.DEFAULT,
                                      help_text=services.HELP["runtime"])
    runtime_image = serializers.CharField(required=False, allow_blank=True, default="",
                                          help_text=services.HELP["runtime_image"])
    access = serializers.ChoiceField(choices=Access.choices, default=Access.NODEPORT,
                                     help_text=services.HELP["access"])
    access_address = serializers.CharField(required=False, allow_blank=True, default="",
                                           help_text=services.HELP["access_address"])


class HostClusterCreateSerializer(HostClusterWriteSerializer):
    name = serializers.CharField(help_text="A slug: lowercase letters, digits and '-'.")


class HostClusterUpdateSerializer(HostClusterWriteSerializer):
    kubeconfig = serializers.CharField(
        write_only=True, required=False, trim_whitespace=False,
        help_text="A replacement kubeconfig, checked like at registration. Omit to keep the current one.",
    )
    enabled = serializers.BooleanField(required=False)
    capacity_notes = serializers.CharField(required=False, allow_blank=True)
    teams = serializers.ListField(child=serializers.CharField(), required=False,
                                  help_text="Replaces the list; [] opens the host cluster to every team.")
    tenant_policy = TenantPolicyField(required=False, help_text="Replaces the policy; {} allows nothing extra.")
    runtime = serializers.ChoiceField(choices=runtimes.CHOICES, required=False, help_text=services.HELP["runtime"])
    runtime_image = serializers.CharField(required=False, allow_blank=True, help_text=services.HELP["runtime_image"])
    access = serializers.ChoiceField(choices=Access.choices, required=False, help_text=services.HELP["access"])
    access_address = serializers.CharField(required=False, allow_blank=True,
                                           help_text=services.HELP["access_address"])


@extend_schema_view(
    list=extend_schema(summary="Host clusters, with their load (platform admins)"),
    retrieve=extend_schema(summary="A host cluster (platform admins)"),
    destroy=extend_schema(summary="Remove a host cluster no live vcluster is placed on (platform admins)",
                          responses={204: None}),
)
class HostClusterViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin,
                         viewsets.GenericViewSet):
    serializer_class = HostClusterSerializer
    queryset = HostCluster.objects.none()  # for the schema; get_queryset() decides
    # Other users get 403 on every call, as for the other platform-admin-only
    # endpoints (creating teams, editing quotas).
    permission_classes = [MayViewModel]
    lookup_field = "name"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return host_clusters_for(self.request.user)

    def _shown(self, host, status_code=status.HTTP_200_OK) -> Response:
        host = self.get_queryset().get(pk=host.pk)
        return Response(HostClusterSerializer(host).data, status=status_code)

    @extend_schema(summary="Register a host cluster (platform admins)", request=HostClusterCreateSerializer,
                   responses={201: HostClusterSerializer})
    def create(self, request):
        data = validated(HostClusterCreateSerializer, request)
        host = services.register_host_cluster(Actor.from_request(request), **data)
        return self._shown(host, status.HTTP_201_CREATED)

    @extend_schema(summary="Change a host cluster: enabled, notes, teams, tenant policy, kubeconfig, runtime and "
                   "access (platform admins)",
                   request=HostClusterUpdateSerializer, responses=HostClusterSerializer)
    def partial_update(self, request, name=None):
        data = validated(HostClusterUpdateSerializer, request)
        host = services.update_host_cluster(Actor.from_request(request), self.get_object(), **data)
        return self._shown(host)

    def perform_destroy(self, host):
        services.delete_host_cluster(Actor.from_request(self.request), host)


class TeamPolicySerializer(serializers.Serializer):
    pod_security = serializers.ChoiceField(
        choices=PodSecurity.choices,
        help_text="Pod Security Standard enforced on the host namespaces of the team's vclusters "
        "(new ones at once, existing ones at the next reconcile).",
    )


class TeamPolicyView(APIView):
    """A team's provisioning policy: readable by whoever sees the team, changed by
    platform admins. Other teams answer 404, like the team itself."""

    @extend_schema(summary="A team's provisioning policy", responses=TeamPolicySerializer)
    def get(self, request, slug):
        team = visible_team(request, slug)
        return Response({"pod_security": services.pod_security_of(team)})

    @extend_schema(summary="Change a team's provisioning policy (platform admins)", request=TeamPolicySerializer,
                   responses=TeamPolicySerializer)
    def put(self, request, slug):
        team = visible_team(request, slug)
        access.require(request.user, "change", team)
        data = validated(TeamPolicySerializer, request)
        policy = services.set_pod_security(Actor.from_request(request), team, data["pod_security"])
        return Response({"pod_security": policy.pod_security})

    @extend_schema(summary="Change a team's provisioning policy (platform admins)", request=TeamPolicySerializer,
                   responses=TeamPolicySerializer)
    def patch(self, request, slug):
        return self.put(request, slug)
