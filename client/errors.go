package client

import (
	"errors"
	"strings"
)

// Sentinel errors. Test for them with errors.Is: the errors the client returns
// wrap them together with the node and the underlying cause.
var (
	// ErrNotFound is returned by Get and TTL when the key does not exist (or
	// has expired or been deleted).
	ErrNotFound = errors.New("client: key not found")
	// ErrNotSet is returned by Set when its NX or XX condition was not met and
	// nothing was written.
	ErrNotSet = errors.New("client: set condition not met")
	// ErrUnavailable means the request was not applied anywhere: no replica
	// could be reached, or the coordinating node found too few live replicas
	// for the consistency level before sending anything (the server's
	// UNAVAILABLE reply). A write that fails with ErrUnavailable can be retried
	// safely.
	ErrUnavailable = errors.New("client: unavailable")
	// ErrTimeout means the outcome is unknown: the request was sent but no
	// answer came back in time, the connection broke before the answer, or the
	// coordinating node heard too few replicas before its deadline (the
	// server's TIMEOUT reply). A write that fails with ErrTimeout may or may
	// not have been applied; read the key to find out before writing again.
	ErrTimeout = errors.New("client: timeout, outcome unknown")
	// ErrClosed is returned by calls made after Close.
	ErrClosed = errors.New("client: closed")
)

// The server's error prefixes that carry a meaning beyond their message. They
// are the RESP side of the server's one error table (internal/resp); the test
// suite checks both against a running cluster.
const (
	prefixUnavailable = "UNAVAILABLE"
	prefixTimeout     = "TIMEOUT"
)

// ServerError is an error reply from a node: the first word of the reply is
// its Prefix ("ERR", "NOAUTH", "UNAVAILABLE", "TIMEOUT", …) and the rest its
// Message. errors.Is(err, ErrUnavailable) and errors.Is(err, ErrTimeout) hold
// for the replies with those prefixes.
type ServerError struct {
	// Node is the id of the node that answered.
	Node    string
	Prefix  string
	Message string
}

func (e *ServerError) Error() string {
	if e.Node == "" {
		return "client: server error: " + e.Prefix + " " + e.Message
	}
	return "client: node " + e.Node + ": " + e.Prefix + " " + e.Message
}

// Is maps the server's error prefixes to the client's sentinels.
func (e *ServerError) Is(target error) bool {
	switch target {
	case ErrUnavailable:
		return e.Prefix == prefixUnavailable
	case ErrTimeout:
		return e.Prefix == prefixTimeout
	}
	return false
}

// parseServerError splits an error reply line into prefix and message.
func parseServerError(line string) *ServerError {
	prefix, msg, _ := strings.Cut(line, " ")
	return &ServerError{Prefix: prefix, Message: msg}
}

// retryable reports whether a read that failed with err may succeed on another
// replica: the node could not be reached or answered too late, or it could not
// gather its replicas. Errors about the request itself (syntax, size limits,
// auth) are the same everywhere and are not retried.
func retryable(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, ErrTimeout)
}
