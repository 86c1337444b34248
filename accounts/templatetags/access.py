"""{% may "view" "accounts.AuditEvent" as show_audit_log %}: access.allowed() for
templates, so a template shows a link or a button under the same rule that guards it."""

from django import template
from django.apps import apps

from accounts import access

register = template.Library()


@register.simple_tag(takes_context=True)
def may(context, action: str, target) -> bool:
    """target: an object, or a model label ("provisioning.HostCluster") for "any of them at all"."""
    if isinstance(target, str):
        target = apps.get_model(target)
    return access.allowed(context["request"].user, action, target)
