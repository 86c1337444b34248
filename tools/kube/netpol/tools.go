//go:build tools

// Package tools pins the main packages that tools/kube/build.sh compiles for real nodes.
package tools

import _ "sigs.k8s.io/kube-network-policies/cmd"
