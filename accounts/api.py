from django.shortcuts import get_object_or_404
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from . import access, resources, services
from .audit import Actor
from .models import ApiToken, AuditEvent, Membership, Role, Team

PLATFORM_ADMIN = "platform-admin"


def my_role(user, team) -> str | None:
    role = getattr(team, "my_role", None)
    return role or (PLATFORM_ADMIN if user.is_staff else None)


class TeamSerializer(serializers.ModelSerializer):
    my_role = serializers.SerializerMethodField(help_text="Your role: admin, member, viewer, or platform-admin.")

    class Meta:
        model = Team
        fields = ["slug", "name", "created_at", "my_role"]

    def get_my_role(self, team) -> str | None:
        return my_role(self.context["request"].user, team)


class TeamCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    slug = serializers.CharField(max_length=50, required=False, help_text="Defaults to a slug of the name.")


def _quota_fields(required: bool) -> dict:
    fields = {"max_vclusters": serializers.CharField(required=required, help_text="Number of vclusters; 0 freezes the team.")}
    for r in resources.RESOURCES:
        fields[r.name] = serializers.CharField(required=required, help_text=f"{r.label} in Kubernetes notation.")
    return fields


QuotaInputSerializer = type("QuotaInputSerializer", (serializers.Serializer,), _quota_fields(required=True))


class QuotaValuesSerializer(serializers.Serializer):
    max_vclusters = serializers.IntegerField()
    cpu = serializers.CharField(help_text='Kubernetes notation, e.g. "8" or "500m".')
    memory = serializers.CharField(help_text='Kubernetes notation, e.g. "16Gi".')
    storage = serializers.CharField(help_text='Kubernetes notation, e.g. "200Gi".')
    pods = serializers.IntegerField()


class QuotaSerializer(QuotaValuesSerializer):
    usage = QuotaValuesSerializer(help_text="What the team's vclusters (all but Deleted) request now.")
    headroom = QuotaValuesSerializer(help_text="What is left for new vclusters.")


def as_text(values: dict[str, int]) -> dict[str, str | int]:
    text = {r.name: r.format(values[r.field]) for r in resources.RESOURCES}
    return {"max_vclusters": values["max_vclusters"], **text}


def quota_payload(team: Team) -> dict:
    used = team.usage()
    return {**as_text(team.quota()), "usage": as_text(used), "headroom": as_text(team.headroom(used))}


class TeamDetailSerializer(TeamSerializer):
    quota = serializers.SerializerMethodField()

    class Meta(TeamSerializer.Meta):
        fields = [*TeamSerializer.Meta.fields, "quota"]

    def get_quota(self, team) -> QuotaSerializer:
        return quota_payload(team)


class MemberSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["username", "role", "created_at"]


class MemberCreateSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)


class MemberRoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


def validated(serializer_class, request, **kwargs) -> dict:
    serializer = serializer_class(data=request.data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def visible_team(request, slug: str) -> Team:
    return get_object_or_404(Team.objects.restrict(request.user, "view"), slug=slug)


class MayViewModel(permissions.BasePermission):
    """403 on every call unless the user may view some object of the view's model at
    all (access.allowed on the model): e.g. host clusters for anyone but platform
    admins, the audit log for anyone but team and platform admins."""

    def has_permission(self, request, view):
        self.message = access.denial(request.user, "view", view.queryset.model)
        return self.message is None


@extend_schema_view(
    list=extend_schema(summary="Teams you belong to (all teams for platform admins)"),
    retrieve=extend_schema(summary="A team, with its quota and usage"),
)
class TeamViewSet(viewsets.ReadOnlyModelViewSet):
    lookup_field = "slug"
    serializer_class = TeamSerializer

    def get_queryset(self):
        return Team.objects.restrict(self.request.user, "view")

    def get_serializer_class(self):
        return TeamDetailSerializer if self.action == "retrieve" else TeamSerializer

    @extend_schema(summary="Create a team (platform admins)", request=TeamCreateSerializer,
                   responses={201: TeamDetailSerializer})
    def create(self, request):
        data = validated(TeamCreateSerializer, request)
        team = services.create_team(Actor.from_request(request), **data)
        team = self.get_queryset().get(pk=team.pk)
        return Response(TeamDetailSerializer(team, context={"request": request}).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="A team's quota, usage and headroom", responses=QuotaSerializer, methods=["GET"])
    @extend_schema(summary="Replace a team's quota (platform admins)", request=QuotaInputSerializer,
                   responses=QuotaSerializer, methods=["PUT"])
    @extend_schema(summary="Change part of a team's quota (platform admins)",
                   request=QuotaInputSerializer(partial=True), responses=QuotaSerializer, methods=["PATCH"])
    @action(detail=True, methods=["get", "put", "patch"])
    def quota(self, request, slug=None):
        team = self.get_object()
        if request.method != "GET":
            partial = request.method == "PATCH"
            data = validated(QuotaInputSerializer, request, partial=partial)
            team = services.update_quota(Actor.from_request(request), team, data, partial=partial)
        return Response(quota_payload(team))


@extend_schema_view(
    list=extend_schema(summary="Members of a team"),
    retrieve=extend_schema(summary="One member of a team"),
    destroy=extend_schema(summary="Remove a member (team admins, platform admins)"),
)
class MemberViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin,
                    viewsets.GenericViewSet):
    serializer_class = MemberSerializer
    queryset = Membership.objects.none()  # for the schema; get_queryset() decides
    lookup_field = "user__username"
    lookup_url_kwarg = "username"
    pagination_class = None
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def team(self) -> Team:
        if not hasattr(self, "_team"):
            self._team = visible_team(self.request, self.kwargs["team_slug"])
        return self._team

    def get_queryset(self):
        return Membership.objects.filter(team=self.team()).select_related("user", "team")

    @extend_schema(summary="Add a member (team admins, platform admins)", request=MemberCreateSerializer,
                   responses={201: MemberSerializer})
    def create(self, request, team_slug=None):
        data = validated(MemberCreateSerializer, request)
        membership = services.add_member(Actor.from_request(request), self.team(), **data)
        return Response(MemberSerializer(membership).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Change a member's role (team admins, platform admins)", request=MemberRoleSerializer,
                   responses=MemberSerializer)
    def partial_update(self, request, team_slug=None, username=None):
        data = validated(MemberRoleSerializer, request)
        membership = services.change_role(Actor.from_request(request), self.get_object(), **data)
        return Response(MemberSerializer(membership).data)

    def perform_destroy(self, membership):
        services.remove_member(Actor.from_request(self.request), membership)


class TokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = ["id", "prefix", "created_at", "last_used_at", "revoked_at"]


class NewTokenSerializer(TokenSerializer):
    token = serializers.CharField(read_only=True, help_text="The token itself. Shown only in this response.")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "token"]


@extend_schema_view(
    list=extend_schema(summary="Your API tokens, revoked ones included"),
    retrieve=extend_schema(summary="One of your API tokens"),
    destroy=extend_schema(summary="Revoke one of your API tokens"),
)
class TokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin,
                   viewsets.GenericViewSet):
    serializer_class = TokenSerializer
    queryset = ApiToken.objects.none()  # for the schema; get_queryset() decides

    def get_queryset(self):
        return ApiToken.objects.restrict(self.request.user, "view")

    @extend_schema(summary="Create an API token (the response is the only time it is shown)",
                   request=TokenSerializer, responses={201: NewTokenSerializer})
    def create(self, request):
        data = validated(TokenSerializer, request)
        api_token, token = services.create_token(Actor.from_request(request), name=data["name"])
        api_token.token = token
        return Response(NewTokenSerializer(api_token).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, api_token):
        services.revoke_token(Actor.from_request(self.request), api_token)


class AuditEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_username")
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)

    class Meta:
        model = AuditEvent
        fields = ["id", "created_at", "actor", "ip_address", "action", "team", "target_type", "target_id",
                  "target_name", "data"]


class AuditEventFilter(filters.FilterSet):
    team = filters.CharFilter(field_name="team__slug")
    action = filters.CharFilter()
    actor = filters.CharFilter(field_name="actor_username")

    class Meta:
        model = AuditEvent
        fields = ["team", "action", "actor"]


@extend_schema_view(
    list=extend_schema(summary="Audit events (platform admins: all; team admins: their teams)"),
    retrieve=extend_schema(summary="One audit event"),
)
class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = AuditEventSerializer
    queryset = AuditEvent.objects.none()  # for the schema and MayViewModel; get_queryset() decides
    permission_classes = [MayViewModel]
    filterset_class = AuditEventFilter

    def get_queryset(self):
        return AuditEvent.objects.restrict(self.request.user, "view").select_related("team")


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    is_platform_admin = serializers.BooleanField()


class MeView(APIView):
    """Who the token or session belongs to (what `vcp whoami` shows)."""

    @extend_schema(summary="Who you are", responses=MeSerializer)
    def get(self, request):
        return Response({"username": request.user.get_username(), "is_platform_admin": request.user.is_staff})
