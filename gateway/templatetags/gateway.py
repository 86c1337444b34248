"""`{% load gateway %}{% access_list vcluster %}`: the vcluster page's access list,
without the vclusters app importing the gateway."""

from django import template

from gateway.models import AccessRecord, Activity

register = template.Library()
SHOWN = 20


@register.inclusion_tag("gateway/access_list.html")
def access_list(vcluster):
    return {
        "vcluster": vcluster,
        "records": AccessRecord.objects.filter(vcluster=vcluster)[:SHOWN],
        "activity": Activity.objects.filter(vcluster=vcluster).first(),
    }
