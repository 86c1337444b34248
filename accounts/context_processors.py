from .models import Role


def navigation(request):
    """Whether to show the audit log link: platform admins and team admins only."""
    user = request.user
    if not user.is_authenticated:
        return {}
    show_audit = user.is_staff or user.memberships.filter(role=Role.ADMIN).exists()
    return {"show_audit_log": show_audit}
