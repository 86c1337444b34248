//go:build tools

// Package tools pins the kwok main package that tools/kube/build.sh compiles.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
