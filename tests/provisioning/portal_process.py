"""A whole second portal for the tests of portals sharing a host: run as
`python -m tests.provisioning.portal_process COMMAND HOST_KUBECONFIG` with its own
database (DATABASE_URL) and state (VCPORTAL_VAR_DIR), it works through the same services
and pipeline as a worker would, one step after another, and prints what it did as JSON.

    register  migrate, register the host as `shared`
    setup     register, then create team `demo` with vclusters `web` and `api` (ids 1 and
              2 in a new database) and provision them
    repair    repair every Ready vcluster
    delete    delete every vcluster and tear it down
    status    each vcluster's phase and message
"""

from __future__ import annotations

import json
import os
import sys

import django


def main(command: str, kubeconfig_path: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    django.setup()
    from django.core.management import call_command

    from accounts.audit import SYSTEM
    from accounts.models import Team
    from provisioning import installation, pipeline
    from provisioning.hostclusters import services
    from provisioning.models import HostCluster
    from vclusters import lifecycle
    from vclusters.models import VCluster

    report: dict = {}
    if command in ("register", "setup"):
        call_command("migrate", verbosity=0)
        with open(kubeconfig_path) as file:
            services.register_host_cluster(SYSTEM, name="shared", kubeconfig=file.read(), runtime="local")
    if command == "setup":
        team = Team.objects.create(name="Demo", slug="demo")
        for name in ("web", "api"):
            vcluster = VCluster.objects.create(team=team, name=name, kubernetes_version="v1.37.2",
                                               cpu_millicores=1000, memory_bytes=2**31, storage_bytes=10 * 2**30,
                                               pods=20)
            pipeline.provision(vcluster.pk)
    elif command == "repair":
        report["repairs"] = {vc.pk: pipeline.repair(vc.pk) for vc in VCluster.objects.all()}
    elif command == "delete":
        for vcluster in VCluster.objects.all():
            lifecycle.transition(vcluster, lifecycle.Event.DELETE)
            pipeline.teardown(vcluster.pk)
    me = installation.current()
    report["installation"] = {"name": me.name, "token": me.token, "uid": str(me.uid)}
    report["host_clusters"] = list(HostCluster.objects.values_list("name", flat=True))
    report["vclusters"] = [
        {"id": vc.pk, "name": vc.name, "phase": vc.phase, "message": vc.message,
         "namespace": getattr(getattr(vc, "placement", None), "host_namespace", None),
         "receipt": getattr(getattr(vc, "placement", None), "receipt", None)}
        for vc in VCluster.objects.select_related("placement").order_by("pk")
    ]
    print(json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:3])
