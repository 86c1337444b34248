//go:build tools

// Package tools pins the kine main package that tools/kube/build.sh compiles.
package tools

import _ "github.com/k3s-io/kine"
