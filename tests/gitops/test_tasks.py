"""The controller's beat task when there is nothing it can serve: no crash, no traceback."""

import logging

import pytest

from gitops.tasks import reconcile_virtual_clusters
from tests.portal.conftest import make_host

pytestmark = pytest.mark.django_db


def test_an_unregistered_or_unset_management_cluster_is_a_quiet_no_op(settings, caplog):
    settings.VCPORTAL_GITOPS_CLUSTER = "nowhere"
    reconcile_virtual_clusters()
    settings.VCPORTAL_GITOPS_CLUSTER = ""
    reconcile_virtual_clusters()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_an_unreachable_management_cluster_is_one_warning_per_pass(settings, caplog):
    make_host("mgmt")  # registered, but its API server does not answer
    settings.VCPORTAL_GITOPS_CLUSTER = "mgmt"
    with caplog.at_level(logging.WARNING, logger="gitops"):
        reconcile_virtual_clusters()
    (warning,) = [r for r in caplog.records if r.name == "gitops.tasks"]
    assert "management cluster mgmt unreachable" in warning.getMessage()
