//go:build tools

// Package tools pins the main package that tools/kube/build.sh compiles for `make conformance`.
package tools

import _ "go.etcd.io/etcd/server/v3"
