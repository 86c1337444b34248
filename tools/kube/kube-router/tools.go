//go:build tools

// Package tools pins the main packages that tools/kube/build.sh compiles for real nodes.
package tools

import _ "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"
