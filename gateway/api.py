"""The gateway's REST endpoints, under /api/v1/vclusters/<id>/: the access log, the
activity counters, the personal access tokens, and fresh credentials for kubectl
(a kubeconfig, or an ExecCredential for a credential plugin such as `vcp`)."""

from datetime import timedelta

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import access
from accounts.audit import Actor
from portal.api import YAMLRenderer
from vclusters.api import kubeconfig_filename
from vclusters.models import VCluster
from vclusters.services import download_admin_kubeconfig

from . import services
from .models import AccessRecord, AccessToken, Activity, RequestCount

ACTIVITY_DAYS = 30


def visible_vcluster(request, pk: int) -> VCluster:
    """The vcluster if the user may see it; another team's answers 404 like a missing one."""
    return get_object_or_404(VCluster.objects.restrict(request.user, "view").select_related("team"), pk=pk)


class AccessRecordSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="username")

    class Meta:
        model = AccessRecord
        fields = ["at", "user", "verb", "api_group", "resource", "subresource", "namespace", "name", "path", "code"]


class AccessLogView(generics.ListAPIView):
    """Mutating requests through the gateway, newest first (reads are only counted: see activity/)."""

    serializer_class = AccessRecordSerializer
    queryset = AccessRecord.objects.none()  # for the schema; get_queryset() decides

    @extend_schema(summary="Who changed what in the vcluster through the gateway")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        vcluster = visible_vcluster(self.request, self.kwargs["pk"])
        return AccessRecord.objects.filter(vcluster=vcluster)


class DayCountSerializer(serializers.ModelSerializer):
    class Meta:
        model = RequestCount
        fields = ["day", "reads", "writes"]


class ActivitySerializer(serializers.Serializer):
    last_request_at = serializers.DateTimeField(allow_null=True, help_text="The vcluster's activity.")
    last_user = serializers.CharField(allow_blank=True)
    days = DayCountSerializer(many=True, help_text=f"Requests per UTC day, the last {ACTIVITY_DAYS} days.")


class ActivityView(APIView):
    @extend_schema(summary="The vcluster's last request and requests per day", responses=ActivitySerializer)
    def get(self, request, pk: int):
        vcluster = visible_vcluster(request, pk)
        activity = Activity.objects.filter(vcluster=vcluster).first()
        since = timezone.now().date() - timedelta(days=ACTIVITY_DAYS)
        return Response(ActivitySerializer({
            "last_request_at": activity.last_request_at if activity else None,
            "last_user": activity.last_username if activity else "",
            "days": RequestCount.objects.filter(vcluster=vcluster, day__gte=since),
        }).data)


class AccessTokenSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username")

    class Meta:
        model = AccessToken
        fields = ["id", "user", "purpose", "prefix", "created_at", "expires_at", "revoked_at"]


class AccessTokenList(generics.ListAPIView):
    """Your tokens for the vcluster; team admins and platform admins see everyone's."""

    serializer_class = AccessTokenSerializer
    queryset = AccessToken.objects.none()  # for the schema; get_queryset() decides

    @extend_schema(summary="Personal access tokens for the vcluster")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        vcluster = visible_vcluster(self.request, self.kwargs["pk"])
        tokens = AccessToken.objects.filter(vcluster=vcluster).select_related("user")
        return tokens if access.allowed(self.request.user, "manage_access", vcluster) else tokens.filter(
            user=self.request.user)


class AccessTokenDetail(APIView):
    @extend_schema(summary="Revoke a token (its owner, team admins, platform admins); effective at once",
                   request=None, responses=AccessTokenSerializer)
    def delete(self, request, pk: int, token_id: int):
        vcluster = visible_vcluster(request, pk)
        token = get_object_or_404(AccessToken.objects.select_related("user", "vcluster__team"),
                                  vcluster=vcluster, pk=token_id)
        token = services.revoke_token(Actor.from_request(request), token)
        return Response(AccessTokenSerializer(token).data)


ExecCredentialSerializer = inline_serializer("ExecCredential", {
    "apiVersion": serializers.CharField(), "kind": serializers.CharField(), "status": serializers.DictField(),
})


class CredentialsView(APIView):
    @extend_schema(
        summary="A fresh gateway token for kubectl's exec credential plugin (every role; audited)",
        request=None, responses={201: ExecCredentialSerializer, 409: OpenApiResponse(description="Not Ready.")},
    )
    def post(self, request, pk: int):
        vcluster = visible_vcluster(request, pk)
        credential = services.issue_exec_credential(Actor.from_request(request), vcluster)
        return Response(credential, status=status.HTTP_201_CREATED)


class KubeconfigView(APIView):
    renderer_classes = [JSONRenderer, YAMLRenderer]  # so `Accept: application/yaml` negotiates

    @extend_schema(
        summary="Download a personal kubeconfig for the vcluster (every role; audited); "
                "?admin=true: the break-glass admin kubeconfig (platform admins)",
        responses={(200, "application/yaml"): OpenApiResponse(OpenApiTypes.STR, description="kubeconfig YAML"),
                   409: OpenApiResponse(description="The vcluster is not Ready yet.")},
    )
    def get(self, request, pk: int):
        return kubeconfig_download(request, visible_vcluster(request, pk))


def kubeconfig_download(request, vcluster: VCluster) -> HttpResponse:
    """The person's own kubeconfig through the gateway; with `?admin=true`, the stored
    break-glass admin kubeconfig (platform admins only, audited as before)."""
    actor = Actor.from_request(request)
    if request.GET.get("admin") == "true":
        kubeconfig, suffix = download_admin_kubeconfig(actor, vcluster), "admin"
    else:
        kubeconfig = services.issue_kubeconfig(actor, vcluster, request.build_absolute_uri("/"))
        suffix = request.user.get_username()
    response = HttpResponse(kubeconfig, content_type="application/yaml")
    response["Content-Disposition"] = f'attachment; filename="{kubeconfig_filename(vcluster, suffix)}"'
    return response
