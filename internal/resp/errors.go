package resp

import (
	"context"
	"errors"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/replication"
	"github.com/ringkv/ringkv/internal/storage"
)

// errorPrefixes is the one table from backend errors to RESP error prefixes.
// The Go client maps the prefixes back, so the two stay in step by reading this
// table. Order matters: the first match wins. Anything unlisted is "ERR".
var errorPrefixes = [...]struct {
	err    error
	prefix string
	// text, when set, is the whole reply: an error whose wording clients
	// match on, as Redis' own.
	text string
}{
	{replication.ErrUnavailable, "UNAVAILABLE", ""},
	{replication.ErrTimeout, "TIMEOUT", ""},
	// Our own RequestTimeout expiring is indeterminate like a replica timeout:
	// a write may have landed.
	{context.DeadlineExceeded, "TIMEOUT", ""},
	{clock.ErrClockSkew, "ERR", ""},
	{storage.ErrOutOfMemory, "OOM", "OOM " + storage.ErrOutOfMemory.Error()},
}

// errorReply renders a backend error as a RESP error line.
func errorReply(err error) string {
	for _, e := range errorPrefixes {
		if errors.Is(err, e.err) {
			if e.text != "" {
				return e.text
			}
			return e.prefix + " " + err.Error()
		}
	}
	return "ERR " + err.Error()
}

// Fixed replies, Redis 7's texts.
const (
	errSyntax       = "ERR syntax error"
	errNotInt       = "ERR value is not an integer or out of range"
	errNoAuth       = "NOAUTH Authentication required."
	errWrongPass    = "WRONGPASS invalid username-password pair or user is disabled."
	errNoPassword   = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
	errDBIndex      = "ERR DB index is out of range"
	errInvalidCurs  = "ERR invalid cursor"
	errClientName   = "ERR Client names cannot contain spaces, newlines or special characters."
	errHelloNoAuth  = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"
	errNoProto      = "NOPROTO unsupported protocol version"
	errHelloVersion = "ERR Protocol version is not an integer or out of range"
	errNXXXGTLT     = "ERR NX and XX, GT or LT options at the same time are not compatible"
	errGTLT         = "ERR GT and LT options at the same time are not compatible"
	errEmptyKey     = "ERR empty keys are not allowed"
)
