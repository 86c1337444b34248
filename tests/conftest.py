# Cluster fixtures (host_cluster, make_cluster) live with the launcher they drive.
pytest_plugins = ["localkube.testing"]
