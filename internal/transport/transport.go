// Package transport is ringkv's node-to-node RPC (design §1): a byte-level,
// method-numbered request/response channel between peers. The replication,
// handoff, anti-entropy and rebalance packages encode their own messages in the
// payload; the transport only moves bytes, matches responses to requests and
// tells the caller what it knows about a failure.
//
// Two implementations share the Transport contract: TCP, which keeps a small
// pool of persistent, multiplexed connections per peer and coalesces many
// frames into one write syscall, and MemNetwork, an in-process network that can
// drop, delay and partition messages so whole clusters can be tested in one
// process (also under testing/synctest).
//
// # Failure semantics
//
// The coordinator must tell UNAVAILABLE (the request was not attempted) from
// TIMEOUT (it may have been applied), so every error from Call is one of:
//
//   - NotSent(err) is true: the request never left this process (dial failed,
//     peer unreachable or partitioned, frame too large, transport closed, ctx
//     done before sending). Retrying elsewhere or hinting is safe.
//   - *RemoteError: the peer's handler ran and returned an error.
//   - anything else is indeterminate: the request may have been applied. A
//     ctx deadline satisfies errors.Is(err, context.DeadlineExceeded); a broken
//     connection satisfies errors.Is(err, ErrConnectionLost).
package transport

import (
	"context"
	"errors"
)

// Handler serves one request. It is called concurrently from many goroutines.
// payload is only valid during the call; the returned bytes are owned by the
// transport afterwards and must not be modified. ctx is cancelled when the
// connection the request came on breaks or the transport closes; handlers must
// honour it, since Close waits for running handlers.
type Handler func(ctx context.Context, from string, method uint8, payload []byte) ([]byte, error)

// Transport sends requests to peers. Implementations are safe for concurrent
// use. Call's payload is not retained after Call returns; the returned bytes
// belong to the caller.
type Transport interface {
	// Call sends payload to the peer at addr and waits for its answer until
	// ctx is done. See the package comment for what its errors mean.
	Call(ctx context.Context, addr string, method uint8, payload []byte) ([]byte, error)
	// Close stops the transport and fails outstanding calls with ErrClosed.
	Close() error
}

// Sentinel errors. Test them with errors.Is; they are usually wrapped with the
// peer address and the underlying cause.
var (
	// ErrClosed: the transport was closed.
	ErrClosed = errors.New("transport: closed")
	// ErrUnreachable: the peer could not be reached; the request was not sent.
	ErrUnreachable = errors.New("transport: peer unreachable, request not sent")
	// ErrConnectionLost: the connection broke after the request was handed to
	// it; the request may have been applied.
	ErrConnectionLost = errors.New("transport: connection lost, request may have been applied")
	// ErrFrameTooLarge: a request or response exceeds the frame size limit.
	ErrFrameTooLarge = errors.New("transport: frame too large")
	// ErrProtocol: the peer broke the wire protocol (bad handshake or frame).
	ErrProtocol = errors.New("transport: protocol error")
)

// RemoteError is an error a peer's handler returned. Only its message crosses
// the wire, so callers that need structure encode it in the payload instead.
type RemoteError struct {
	Peer    string // address called
	Message string // the handler's err.Error()
}

func (e *RemoteError) Error() string {
	return "transport: peer " + e.Peer + ": " + e.Message
}

// notSentError marks an error whose request certainly never reached the peer.
type notSentError struct{ err error }

func (e *notSentError) Error() string { return e.err.Error() }
func (e *notSentError) Unwrap() error { return e.err }

func notSent(err error) error { return &notSentError{err: err} }

// NotSent reports whether err means the request was certainly not delivered to
// the peer, so it was not applied there. It is false for nil, for remote
// errors and for indeterminate failures such as deadlines after sending.
func NotSent(err error) bool {
	var ns *notSentError
	return errors.As(err, &ns)
}

// IsRemote reports whether err is the peer's own answer (a RemoteError): the
// request arrived and was refused or failed there, so retrying or hinting it
// would meet the same answer.
func IsRemote(err error) bool {
	var re *RemoteError
	return errors.As(err, &re)
}
