package resp

import (
	"context"
	"errors"
	"strings"
	"syscall"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/diskspace"
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
	// A timeout comes before a full disk: a write that some replica took
	// and a full one refused is indeterminate, and the client must know.
	{replication.ErrTimeout, "TIMEOUT", ""},
	// Our own RequestTimeout expiring is indeterminate like a replica timeout:
	// a write may have landed.
	{context.DeadlineExceeded, "TIMEOUT", ""},
	// A full disk (the guard's refusal, or the engine's own ENOSPC when the
	// reserve was not enough) is told as such, whichever replica count it
	// left the write short of: the operator must free space, not retry.
	{diskspace.ErrDiskFull, "ERR", ""},
	{syscall.ENOSPC, "ERR", ""},
	{storage.ErrOutOfMemory, "OOM", "OOM " + storage.ErrOutOfMemory.Error()},
	{replication.ErrUnavailable, "UNAVAILABLE", ""},
	{clock.ErrClockSkew, "ERR", ""},
	{replication.ErrNotInteger, "ERR", errNotInt},
	{replication.ErrOverflow, "ERR", errOverflow},
}

// errorReply renders a backend error as a RESP error line.
func errorReply(err error) string {
	for _, e := range errorPrefixes {
		if errors.Is(err, e.err) {
			if e.text != "" {
				return e.text
			}
			return e.prefix + " " + message(err, e.err)
		}
	}
	return "ERR " + err.Error()
}

// message is err's text, or for a full disk the guard's own sentence
// ("disk full: <dir> has N MB free ..."), which says all there is to say.
func message(err, matched error) string {
	if errors.Is(matched, diskspace.ErrDiskFull) {
		var full *diskspace.FullError
		if errors.As(err, &full) {
			return full.Error()
		}
	}
	if errors.Is(matched, syscall.ENOSPC) {
		return "disk full: " + err.Error()
	}
	return err.Error()
}

// readErrorReply renders the error of a command that only read: a timeout
// there wrote nothing, and the replication error's "a write may have been
// applied" would send a client hunting for a write that never was.
func readErrorReply(err error) string {
	r := errorReply(err)
	if strings.HasPrefix(r, "TIMEOUT ") {
		r = strings.Replace(r, replication.ErrTimeout.Error(), "replication: too few replicas answered the read in time", 1)
	}
	return r
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
