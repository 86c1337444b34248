"""The host-cluster registry: which host clusters there are, who may use them, how
their vclusters run and are reached (services, pages, API), each team's provisioning
policy, and where a new vcluster goes (placement). The lifecycle (provisioning.pipeline)
asks it for a placement; it never drives a vcluster's work."""
