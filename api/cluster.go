package api

// The cluster path: the gateway serves this API group through the
// Kubernetes aggregation layer, and forwards attach sessions to the
// target node's agent over mutual TLS.
const (
	// Group and Version of the aggregated API the gateway serves.
	Group   = "nodedebug.io"
	Version = "v1alpha1"

	// AttachSubresource is namespaces/{ns}/pods/{pod}/attach in Group.
	AttachSubresource = "attach"

	// MetadataUser and MetadataGroups carry the user the API server
	// authenticated, as gRPC metadata from the gateway to the agent. The
	// agent believes them only on its mutual-TLS listener, from the
	// gateway's certificate.
	MetadataUser   = "nodedebug-user"
	MetadataGroups = "nodedebug-groups"
)

// Query parameters of an attach request besides Kubernetes' exec ones
// (container, command, stdin, stdout, stderr, tty).
const (
	ParamImage   = "image"
	ParamProfile = "profile"
	ParamShare   = "share"
	ParamExited  = "exited"
	ParamAttempt = "attempt"
	// ParamReason goes to the agent's audit record, as --reason.
	ParamReason = "reason"
)
