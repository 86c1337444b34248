//go:build tools

// Package tools pins the main package that tools/kube/build.sh compiles for real nodes.
package tools

import _ "github.com/rancher/local-path-provisioner"
