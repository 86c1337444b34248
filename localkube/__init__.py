"""Real Kubernetes on loopback: the upstream binaries built by `make kube`, started
as processes with their own CA, ports and state directory."""

from .cluster import ClusterError, LocalCluster

__all__ = ["ClusterError", "LocalCluster"]
