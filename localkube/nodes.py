"""Fake nodes that kwok keeps Ready, so the scheduler has somewhere to bind pods."""

from __future__ import annotations

import time

from kubernetes import client

NODE_PREFIX = "kwok-node-"
CAPACITY = {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "1Ti"}
# Beside a real node, only pods that tolerate this land on fake ones (e.g. benchmarks).
FAKE_NODE_LABEL = ("type", "kwok")  # what tells kwok's nodes from real ones (metrics-server skips them)
FAKE_NODE_TAINT = client.V1Taint(key="kwok.x-k8s.io/node", value="fake", effect="NoSchedule")


def node_manifest(name: str, taint: bool = False) -> client.V1Node:
    return client.V1Node(
        metadata=client.V1ObjectMeta(
            name=name,
            annotations={"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            labels={
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                FAKE_NODE_LABEL[0]: FAKE_NODE_LABEL[1],
            },
        ),
        spec=client.V1NodeSpec(taints=[FAKE_NODE_TAINT] if taint else None),
        status=client.V1NodeStatus(allocatable=CAPACITY, capacity=CAPACITY),
    )


def ensure_fake_nodes(api_client, count: int, deadline: float, taint: bool = False) -> None:
    core = client.CoreV1Api(api_client)
    existing = {n.metadata.name for n in core.list_node().items}
    for i in range(count):
        name = f"{NODE_PREFIX}{i}"
        if name not in existing:
            core.create_node(node_manifest(name, taint))
    while True:
        ready = [n for n in core.list_node().items if _is_ready(n) and n.metadata.name.startswith(NODE_PREFIX)]
        if len(ready) >= count:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(ready)} of {count} kwok nodes became Ready")
        time.sleep(0.1)


def _is_ready(node: client.V1Node) -> bool:
    conditions = (node.status and node.status.conditions) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)
