//go:build cgo && linux

// Package nsenter lets the agent run a command in a target's namespaces
// without a container runtime. The agent re-executes its own binary with
// the environment below; a C constructor (nsenter.c) joins the target's
// namespaces before the Go runtime starts, and Child finishes the job in
// Go.
package nsenter

// #cgo CFLAGS: -Wall -Werror -std=gnu99
import "C"

// Available reports whether this binary carries the constructor.
const Available = true
