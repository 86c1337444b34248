"""The access rules themselves (accounts.access): personas × actions per model, for
the object check, the queryset filter and the model-wide check, which must agree.
The authorization matrix checks that pages and API apply them."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied

from accounts import access
from accounts.audit import Actor, record
from accounts.models import ApiToken, AuditEvent, Team
from provisioning.models import HostCluster
from tests.portal.conftest import PERSONAS, expect, make_host, make_vcluster, token_for
from vclusters.models import VCluster

pytestmark = pytest.mark.django_db


NONE_BUT_STAFF = expect(False, False, False, False, False, True)
TEAM = expect(False, False, True, True, True, True)
WRITERS = expect(False, False, False, True, True, True)
ADMINS = expect(False, False, False, False, True, True)
OWNER_ONLY = expect(False, False, False, False, True, False)

# (model, the object in team alpha (or owned by the team admin) it is checked on, action, who may)
RULES = [
    (Team, "alpha", "view", TEAM),
    (Team, "alpha", "create_vcluster", WRITERS),
    (Team, "alpha", "manage", ADMINS),
    (Team, "alpha", "change", NONE_BUT_STAFF),
    (Team, "alpha", "add", NONE_BUT_STAFF),
    (VCluster, "vcluster", "view", TEAM),
    (VCluster, "vcluster", "change", WRITERS),
    (VCluster, "vcluster", "delete", WRITERS),
    (VCluster, "vcluster", "connect", TEAM),
    (VCluster, "vcluster", "manage_access", ADMINS),
    (VCluster, "vcluster", "download_admin_kubeconfig", NONE_BUT_STAFF),
    (AuditEvent, "alpha_event", "view", ADMINS),
    (AuditEvent, "teamless_event", "view", NONE_BUT_STAFF),
    (HostCluster, "host", "view", NONE_BUT_STAFF),
    (HostCluster, "host", "change", NONE_BUT_STAFF),
    (HostCluster, "host", "delete", NONE_BUT_STAFF),
    (ApiToken, "owner_token", "view", OWNER_ONLY),
    (ApiToken, "owner_token", "delete", OWNER_ONLY),
]


@pytest.fixture
def things(world):
    token_for(world.owner, name="owned")
    return {
        "alpha": world.alpha,
        "vcluster": make_vcluster(world.alpha, "web"),
        "alpha_event": record(Actor(world.owner), "test.event", team=world.alpha),
        "teamless_event": record(Actor(world.staff), "test.event"),
        "host": make_host("east"),
        "owner_token": ApiToken.objects.get(user=world.owner, name="owned"),
    }


def user_of(world, persona):
    return AnonymousUser() if persona == "anonymous" else world.users[persona]


CASES = [
    pytest.param(model, thing, action, persona, may, id=f"{model.__name__}-{thing}-{action}-{persona}")
    for model, thing, action, who in RULES
    for persona, may in who.items()
]


@pytest.mark.parametrize("model, thing, action, persona, may", CASES)
def test_the_object_check_and_the_queryset_agree(world, things, model, thing, action, persona, may):
    user, obj = user_of(world, persona), things[thing]
    assert access.allowed(user, action, obj) is may
    assert model.objects.restrict(user, action).filter(pk=obj.pk).exists() is may
    if may:
        access.require(user, action, obj)
    else:
        with pytest.raises(PermissionDenied):
            access.require(user, action, obj)


# Whether the user may do the action on any object of the model at all: what decides
# 403 for a whole page or endpoint (the audit log, host clusters, creating teams).
MODEL_WIDE = [
    (AuditEvent, "view", expect(False, True, False, False, True, True)),  # the outsider administers beta
    (HostCluster, "view", NONE_BUT_STAFF),
    (Team, "add", NONE_BUT_STAFF),
    (Team, "create_vcluster", expect(False, True, False, True, True, True)),  # the outsider, in beta
    (ApiToken, "view", expect(False, True, True, True, True, True)),
]


@pytest.mark.parametrize("model, action, who", MODEL_WIDE, ids=lambda v: getattr(v, "__name__", None))
def test_the_model_wide_check(world, model, action, who):
    assert {p: access.allowed(user_of(world, p), action, model) for p in PERSONAS} == who


def test_a_denial_says_which_role_it_takes(world, things):
    assert access.denial(world.viewer, "delete", things["vcluster"]) == "Your role in this team is read-only."
    assert access.denial(world.owner, "view", HostCluster) == "Only platform admins may do this."
    assert access.denial(world.teammate, "delete", things["vcluster"]) is None


def test_an_unknown_action_is_a_programming_error(world, things):
    with pytest.raises(ValueError, match="VCluster has no action 'destroy'"):
        access.allowed(world.staff, "destroy", things["vcluster"])
    with pytest.raises(ValueError):
        VCluster.objects.restrict(world.staff, "destroy")


def test_restricted_teams_carry_the_users_role(world):
    roles = dict(Team.objects.restrict(world.viewer, "view").values_list("slug", "my_role"))
    assert roles == {"alpha": "viewer"}
    roles = dict(Team.objects.restrict(world.staff, "view").values_list("slug", "my_role"))
    assert roles == {"alpha": None, "beta": None}


def test_a_role_change_takes_effect_at_once(world, things):
    world.alpha.memberships.filter(user=world.viewer).update(role="member")
    assert access.allowed(world.viewer, "delete", VCluster.objects.get(pk=things["vcluster"].pk))


def test_checks_on_restricted_rows_need_no_query(world, things, django_assert_num_queries):
    vcluster = VCluster.objects.restrict(world.viewer, "view").get(pk=things["vcluster"].pk)
    assert vcluster.my_role == "viewer"
    with django_assert_num_queries(0):
        assert access.allowed(world.viewer, "view", vcluster)
        assert not access.allowed(world.viewer, "delete", vcluster)
