//go:build tools

// Package tools pins the main package that tools/kube/build.sh compiles for real nodes.
package tools

import _ "sigs.k8s.io/metrics-server/cmd/metrics-server"
