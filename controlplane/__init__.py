"""What a vcluster's control plane is, whichever runtime runs it: its keys (pki), its
kubeconfigs, each component's flags over a layout of its files (components), its audit
policy, what runs inside it as add-ons (CoreDNS), the images, the cluster domain.

Both runtimes build from here: `local` through localkube's launcher (which also builds
the embedded host cluster from it), `kubernetes` as a pod's containers. No Django: the
launcher, the syncer's tests and the runtime image's tools import it standalone.
"""
