"""The page's kubeconfig download, personal by default (see api.kubeconfig_download)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse

from portal.errors import NotReady

from .api import kubeconfig_download, visible_vcluster


@login_required
def vcluster_kubeconfig(request, pk: int):
    vcluster = visible_vcluster(request, pk)
    try:
        return kubeconfig_download(request, vcluster)
    except NotReady as exc:
        return HttpResponse(str(exc), status=409, content_type="text/plain")
