"""What a host cluster with a real node runs through its API: cluster DNS, the
rights of the NetworkPolicy enforcer, dynamic volumes, an ingress controller and
metrics-server.

CoreDNS runs as a Deployment in kube-system. The Service `kube-dns` has the address
the kubelet writes into every pod's resolv.conf (realnode.CLUSTER_DNS_IP). CoreDNS
answers for cluster.local from the API and forwards nothing: the node has no upstream
resolver, so other names fail fast. The enforcer (kube-router, a process on the node)
reads pods, namespaces, nodes and NetworkPolicies as `system:kube-router`.
CoreDNS's manifests are a vcluster's add-on too (controlplane.addons): the host runs the same.

Volumes come from rancher's local-path-provisioner, as on k3s or kind: the StorageClass
`local-path` is the default, so a StatefulSet's PVC binds as on any real cluster. It
waits for the first consumer, so the volume is a directory on the real node, made
by a short-lived busybox helper pod, and it is deleted with its PV (reclaimPolicy
Delete). The provisioner itself only talks to the API: it runs as non-root on a
read-only root filesystem; its helper pods (root, a hostPath of the volumes
directory) run in its own namespace, get no API token, and are its only pods.

Ingresses are served by vcportal-ingress (tools/kube/ingress: Caddy and an Ingress
watcher, built by `make kube`), the controller of the default IngressClass `vcportal`: a
Deployment in `vcportal-ingress` behind a NodePort Service, so a page is at
`http://<node address>:30080/` with its Ingress's Host (HTTPS: 30443). Its namespace
carries the label that lets it reach tenants' pods (provisioning.manifests.network_policies).
It reads Ingresses, IngressClasses, Services and TLS Secrets, and writes Ingress status.

The metrics.k8s.io API (`kubectl top`, HPAs, and each syncer's figures: syncer.metricsapi)
is metrics-server's, as on most real clusters: a Deployment in kube-system on the node's
network (the host's API server runs beside the node and reaches the node's address, not
a ClusterIP; it routes to the Service's endpoints), scraping the real node's kubelet
(verified against the cluster's CA; kwok's nodes have no kubelet and are skipped). Its
serving certificate comes from the cluster's CA, which the APIService names, so the API
server verifies it too.

Applied with `kubectl apply --server-side`, so a start after a `make images` that
built a new CoreDNS image rolls the Deployment to it.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import yaml

from controlplane.addons import coredns_manifests
from controlplane.pki import KeyPair

from .nodes import FAKE_NODE_LABEL

ENFORCER_USER = "system:kube-router"

ENFORCER = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: "vcportal:network-policy-enforcer"}}
rules:
- apiGroups: [""]
  resources: [pods, namespaces, nodes, services, endpoints]
  verbs: [get, list, watch]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: "vcportal:network-policy-enforcer"}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "vcportal:network-policy-enforcer"}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: "{enforcer}"}}]
"""

LOCAL_PATH_NAMESPACE = "local-path-storage"
LOCAL_PATH_STORAGE_CLASS = "local-path"

LOCAL_PATH_STORAGE = """\
apiVersion: v1
kind: Namespace
metadata:
  name: local-path-storage
  # its helper pods mount the volumes directory of the node
  labels: {pod-security.kubernetes.io/enforce: privileged}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: local-path-provisioner, namespace: local-path-storage}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: local-path-provisioner, namespace: local-path-storage}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get, create, delete]
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
- apiGroups: [""]
  resources: [configmaps]
  resourceNames: [local-path-config]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: local-path-provisioner, namespace: local-path-storage}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: local-path-provisioner}
subjects: [{kind: ServiceAccount, name: local-path-provisioner, namespace: local-path-storage}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "vcportal:local-path-provisioner"}
rules:
- apiGroups: [""]
  resources: [persistentvolumeclaims, nodes]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [persistentvolumes]
  verbs: [get, list, watch, create, delete]
- apiGroups: [storage.k8s.io]
  resources: [storageclasses]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "vcportal:local-path-provisioner"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "vcportal:local-path-provisioner"}
subjects: [{kind: ServiceAccount, name: local-path-provisioner, namespace: local-path-storage}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: local-path-config, namespace: local-path-storage}
data:
  config.json: "filled in by local_path_manifests"
  setup: |-
    #!/bin/sh
    set -eu
    mkdir -m 0777 -p "$VOL_DIR"
  teardown: |-
    #!/bin/sh
    set -eu
    rm -rf "$VOL_DIR"
  helperPod.yaml: |-
    apiVersion: v1
    kind: Pod
    metadata: {name: helper-pod}
    spec:
      automountServiceAccountToken: false
      priorityClassName: system-node-critical
      containers:
      - name: helper-pod
        image: HELPER_IMAGE
        resources: {requests: {cpu: 10m, memory: 16Mi}, limits: {cpu: 100m, memory: 64Mi}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: local-path-provisioner, namespace: local-path-storage}
spec:
  replicas: 1
  selector: {matchLabels: {app: local-path-provisioner}}
  template:
    metadata: {labels: {app: local-path-provisioner}}
    spec:
      serviceAccountName: local-path-provisioner
      priorityClassName: system-cluster-critical
      nodeSelector: {kubernetes.io/hostname: NODE}
      securityContext:
        runAsNonRoot: true
        runAsUser: 65534
        runAsGroup: 65534
        seccompProfile: {type: RuntimeDefault}
      containers:
      - name: local-path-provisioner
        image: IMAGE
        args: [start, --config, /etc/config/config.json, --service-account-name, local-path-provisioner,
               --helper-image, HELPER_IMAGE]
        env:
        - name: POD_NAMESPACE
          valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
        - {name: CONFIG_MOUNT_PATH, value: /etc/config/}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
        resources: {requests: {cpu: 10m, memory: 32Mi}, limits: {cpu: 200m, memory: 128Mi}}
        volumeMounts: [{name: config, mountPath: /etc/config, readOnly: true}]
      volumes: [{name: config, configMap: {name: local-path-config}}]
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local-path
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: rancher.io/local-path
reclaimPolicy: Delete
volumeBindingMode: WaitForFirstConsumer
"""


INGRESS_NAMESPACE = "vcportal-ingress"
INGRESS_CLASS = "vcportal"
INGRESS_NODE_PORTS = {"http": 30080, "https": 30443}

INGRESS = """\
apiVersion: v1
kind: Namespace
metadata:
  name: vcportal-ingress
  labels: {vcportal.io/ingress-controller: "true"}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: vcportal-ingress, namespace: vcportal-ingress}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "vcportal:ingress-controller"}
rules:
- apiGroups: [""]
  resources: [services, secrets]
  verbs: [get, list, watch]
- apiGroups: [networking.k8s.io]
  resources: [ingresses, ingressclasses]
  verbs: [get, list, watch]
- apiGroups: [networking.k8s.io]
  resources: [ingresses/status]
  verbs: [update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "vcportal:ingress-controller"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "vcportal:ingress-controller"}
subjects: [{kind: ServiceAccount, name: vcportal-ingress, namespace: vcportal-ingress}]
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: vcportal
  annotations: {ingressclass.kubernetes.io/is-default-class: "true"}
spec: {controller: vcportal.io/ingress}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: vcportal-ingress, namespace: vcportal-ingress}
spec:
  replicas: 1
  selector: {matchLabels: {app: vcportal-ingress}}
  template:
    metadata: {labels: {app: vcportal-ingress}}
    spec:
      serviceAccountName: vcportal-ingress
      priorityClassName: system-cluster-critical
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        seccompProfile: {type: RuntimeDefault}
      containers:
      - name: vcportal-ingress
        image: IMAGE
        env:
        - name: PUBLISH_IP
          valueFrom: {fieldRef: {fieldPath: status.hostIP}}
        ports: [{name: http, containerPort: 8080}, {name: https, containerPort: 8443}, {name: health, containerPort: 10254}]
        readinessProbe:
          httpGet: {path: /healthz, port: health}
          periodSeconds: 2
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
        resources: {requests: {cpu: 20m, memory: 64Mi}, limits: {cpu: 500m, memory: 256Mi}}
        volumeMounts: [{name: tmp, mountPath: /tmp}]
      volumes: [{name: tmp, emptyDir: {}}]
---
apiVersion: v1
kind: Service
metadata: {name: vcportal-ingress, namespace: vcportal-ingress}
spec:
  type: NodePort
  selector: {app: vcportal-ingress}
  ports:
  - {name: http, port: 80, targetPort: http, nodePort: HTTP_NODE_PORT}
  - {name: https, port: 443, targetPort: https, nodePort: HTTPS_NODE_PORT}
"""


def ingress_manifests(image: str) -> list[dict]:
    return list(yaml.safe_load_all(INGRESS.replace("IMAGE", image)
                                   .replace("HTTPS_NODE_PORT", str(INGRESS_NODE_PORTS["https"]))
                                   .replace("HTTP_NODE_PORT", str(INGRESS_NODE_PORTS["http"]))))


METRICS_SERVER_PORT = 4443  # on the node's address: 10250 is the kubelet's
METRICS_SERVER_SERVICE = "metrics-server.kube-system.svc"  # what its serving certificate names

METRICS_SERVER = """\
apiVersion: v1
kind: ServiceAccount
metadata: {name: metrics-server, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:metrics-server"}
rules:
- apiGroups: [""]
  resources: [nodes/metrics]
  verbs: [get]
- apiGroups: [""]
  resources: [pods, nodes]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:metrics-server"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:metrics-server"}
subjects: [{kind: ServiceAccount, name: metrics-server, namespace: kube-system}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "metrics-server:system:auth-delegator"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:auth-delegator"}
subjects: [{kind: ServiceAccount, name: metrics-server, namespace: kube-system}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: metrics-server-auth-reader, namespace: kube-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: extension-apiserver-authentication-reader}
subjects: [{kind: ServiceAccount, name: metrics-server, namespace: kube-system}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: "system:aggregated-metrics-reader"
  labels:
    rbac.authorization.k8s.io/aggregate-to-view: "true"
    rbac.authorization.k8s.io/aggregate-to-edit: "true"
    rbac.authorization.k8s.io/aggregate-to-admin: "true"
rules:
- apiGroups: [metrics.k8s.io]
  resources: [pods, nodes]
  verbs: [get, list, watch]
---
apiVersion: v1
kind: Secret
metadata: {name: metrics-server-tls, namespace: kube-system}
type: kubernetes.io/tls
data: {tls.crt: TLS_CRT, tls.key: TLS_KEY}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: metrics-server
  namespace: kube-system
  labels: {k8s-app: metrics-server}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: metrics-server}}
  template:
    metadata: {labels: {k8s-app: metrics-server}}
    spec:
      serviceAccountName: metrics-server
      priorityClassName: system-cluster-critical
      hostNetwork: true
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        seccompProfile: {type: RuntimeDefault}
      containers:
      - name: metrics-server
        image: IMAGE
        args:
        - --secure-port=PORT
        - --tls-cert-file=/tls/tls.crt
        - --tls-private-key-file=/tls/tls.key
        - --kubelet-certificate-authority=/var/run/secrets/kubernetes.io/serviceaccount/ca.crt
        - --kubelet-preferred-address-types=InternalIP
        - --node-selector=NOT_FAKE_NODES
        - --metric-resolution=15s
        ports: [{name: https, containerPort: PORT}]
        readinessProbe:
          httpGet: {path: /readyz, port: https, scheme: HTTPS}
          periodSeconds: 5
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
        resources: {requests: {cpu: 20m, memory: 48Mi}, limits: {cpu: 500m, memory: 200Mi}}
        volumeMounts: [{name: tls, mountPath: /tls, readOnly: true}]
      volumes: [{name: tls, secret: {secretName: metrics-server-tls}}]
---
apiVersion: v1
kind: Service
metadata: {name: metrics-server, namespace: kube-system, labels: {k8s-app: metrics-server}}
spec:
  selector: {k8s-app: metrics-server}
  ports: [{name: https, port: 443, targetPort: https}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.metrics.k8s.io}
spec:
  group: metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  service: {name: metrics-server, namespace: kube-system, port: 443}
  caBundle: CA_BUNDLE
"""


def metrics_server_manifests(image: str, tls: KeyPair, ca_pem: bytes) -> list[dict]:
    """metrics-server serving with `tls` (for METRICS_SERVER_SERVICE, from the CA `ca_pem`)."""
    return list(yaml.safe_load_all(
        METRICS_SERVER.replace("IMAGE", image).replace("PORT", str(METRICS_SERVER_PORT))
        .replace("NOT_FAKE_NODES", "!=".join(FAKE_NODE_LABEL))
        .replace("TLS_CRT", _base64(tls.cert_pem)).replace("TLS_KEY", _base64(tls.key_pem))
        .replace("CA_BUNDLE", _base64(ca_pem))))


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def local_path_manifests(image: str, helper_image: str, node: str, volumes_dir: Path) -> list[dict]:
    """The provisioner on `node`, making each volume a directory in `volumes_dir` there."""
    manifests = list(yaml.safe_load_all(
        LOCAL_PATH_STORAGE.replace("HELPER_IMAGE", helper_image).replace("IMAGE", image).replace("NODE", node)
    ))
    config = next(m for m in manifests if m["kind"] == "ConfigMap")
    config["data"]["config.json"] = json.dumps(
        {"nodePathMap": [{"node": node, "paths": [str(volumes_dir)]}]}, indent=2
    )
    return manifests


def deploy(kubectl: Path, kubeconfig: Path, image: str, service_ip: str, domain: str,
           others: list[dict]) -> None:
    """Apply the enforcer's RBAC, CoreDNS (`image`) and `others` (local_path_manifests,
    ingress_manifests, metrics_server_manifests)."""
    manifest = ENFORCER.format(enforcer=ENFORCER_USER) + "---\n" + yaml.safe_dump_all(
        coredns_manifests(image, domain, service_ip) + others)
    result = subprocess.run(
        [str(kubectl), f"--kubeconfig={kubeconfig}", "apply", "--server-side",
         "--field-manager=localkube", "--force-conflicts", "-f", "-"],
        input=manifest, capture_output=True, text=True, timeout=60,
    )
    if result.returncode != 0:
        raise RuntimeError(f"applying the add-ons failed: {result.stderr.strip()}")
