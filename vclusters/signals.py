"""What vclusters asks of the layer above it, without importing it.

vclusters decides *that* a vcluster needs work (created, retried, deleted); the app
that does the work (provisioning) connects receivers that enqueue its Celery tasks.
Signals rather than Celery's send_task by name: the contract is a Python object
both sides import, receivers run in-process (so eager tasks in tests still work), and
vclusters stays usable with no receiver at all (the vcluster then waits in its phase).

The lifecycle (vclusters.lifecycle) sends them, only once the transaction that changed
the phase has committed, with sender=VCluster and the vcluster's id:

- provision_requested: a new vcluster, or a Failed one retried, is Pending;
- teardown_requested: a vcluster is Deleting.
"""

from django.db import transaction
from django.dispatch import Signal

provision_requested = Signal()
teardown_requested = Signal()


def send_on_commit(signal: Signal, sender: type, vcluster_id: int) -> None:
    transaction.on_commit(lambda: signal.send(sender=sender, vcluster_id=vcluster_id))
