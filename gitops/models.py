"""What the GitOps controller remembers in the portal: which VirtualCluster object owns
which vcluster, and the identity it acts as."""

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User
from django.db import models

from accounts.audit import Actor
from vclusters.models import VCluster

CONTROLLER_USERNAME = "vcportal-gitops"


class ControllerUser(User):
    """The controller's account, named in audit events and as the creator of its
    vclusters as "gitops:<namespace>/<name>", the object it acted for.

    A platform admin granted it the team by labelling the namespace, so it holds
    platform rights (is_staff) and the service functions still apply every rule but
    the role check: quota, names, versions, audit. It is inactive with no usable
    password: nobody can log in as it or hold a token for it."""

    acting_for = ""

    class Meta:
        proxy = True

    def get_username(self) -> str:
        return f"gitops:{self.acting_for}" if self.acting_for else self.username


def actor_for(namespace: str, name: str) -> Actor:
    user, _ = ControllerUser.objects.get_or_create(
        username=CONTROLLER_USERNAME, defaults={"is_staff": True, "is_active": False, "password": make_password(None)}
    )
    user.acting_for = f"{namespace}/{name}"
    return Actor(user)


class VirtualClusterBinding(models.Model):
    """The VirtualCluster object (by uid, on a management cluster) that owns a vcluster.

    The uid, not the name, is the key: an object deleted and applied again is a new
    owner, and a vcluster deleted in the portal is not recreated for the object that
    still names it. `cluster_uid` (the uid of the cluster's kube-system namespace) tells
    a re-created or replaced management cluster under the same name from the one the
    object lived on, so its missing objects are not taken as deleted."""

    cluster = models.CharField(max_length=50)
    cluster_uid = models.CharField(max_length=36)
    namespace = models.CharField(max_length=63)
    name = models.CharField(max_length=253)
    uid = models.CharField(max_length=36)
    vcluster = models.OneToOneField(VCluster, on_delete=models.CASCADE, related_name="gitops_binding")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["cluster_uid", "uid"], name="one_binding_per_object")]

    def __str__(self):
        return f"{self.cluster}:{self.namespace}/{self.name} → {self.vcluster_id}"
