//go:build !cgo || !linux

package nsenter

// Available reports whether this binary carries the constructor; a build
// with CGO_ENABLED=0 does not, and the agent refuses the nsenter path.
const Available = false
