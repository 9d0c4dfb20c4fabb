package client

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// The client speaks RESP2 (https://redis.io/docs/reference/protocol-spec/):
// every reply ringkv sends to the commands the client uses is a simple string,
// an error, an integer, a bulk string or an array of those.

// Limits on what a reply may declare, so a corrupt or hostile stream cannot
// make the client allocate without bound. They sit well above the server's own
// limits (16 MiB values by default).
const (
	maxBulkLen  = 1 << 30
	maxArrayLen = 1 << 24
	maxDepth    = 4
)

// reply is one parsed RESP value.
type reply struct {
	kind  byte // '+', '-', ':', '$', '*'
	null  bool // "$-1" or "*-1"
	str   []byte
	n     int64
	elems []reply
}

// errProtocol is a reply the client cannot parse; the connection is closed.
var errProtocol = errors.New("client: RESP protocol error")

// readReply parses one reply from rd.
func readReply(rd *bufio.Reader) (reply, error) { return readReplyDepth(rd, 0) }

func readReplyDepth(rd *bufio.Reader, depth int) (reply, error) {
	line, err := readLine(rd)
	if err != nil {
		return reply{}, err
	}
	if len(line) == 0 {
		return reply{}, fmt.Errorf("%w: empty line", errProtocol)
	}
	r := reply{kind: line[0]}
	body := line[1:]
	switch r.kind {
	case '+', '-':
		r.str = append([]byte(nil), body...)
		return r, nil
	case ':':
		r.n, err = strconv.ParseInt(string(body), 10, 64)
		if err != nil {
			return reply{}, fmt.Errorf("%w: bad integer %q", errProtocol, body)
		}
		return r, nil
	case '$':
		n, err := strconv.ParseInt(string(body), 10, 64)
		switch {
		case err != nil || n < -1 || n > maxBulkLen:
			return reply{}, fmt.Errorf("%w: bad bulk length %q", errProtocol, body)
		case n == -1:
			r.null = true
			return r, nil
		}
		r.str = make([]byte, n+2)
		if _, err := io.ReadFull(rd, r.str); err != nil {
			return reply{}, err
		}
		if r.str[n] != '\r' || r.str[n+1] != '\n' {
			return reply{}, fmt.Errorf("%w: bulk not terminated by CRLF", errProtocol)
		}
		r.str = r.str[:n]
		return r, nil
	case '*':
		n, err := strconv.ParseInt(string(body), 10, 64)
		switch {
		case err != nil || n < -1 || n > maxArrayLen:
			return reply{}, fmt.Errorf("%w: bad array length %q", errProtocol, body)
		case n == -1:
			r.null = true
			return r, nil
		case depth >= maxDepth:
			return reply{}, fmt.Errorf("%w: arrays nested too deep", errProtocol)
		}
		r.elems = make([]reply, 0, min(n, 1024))
		for range n {
			e, err := readReplyDepth(rd, depth+1)
			if err != nil {
				return reply{}, err
			}
			r.elems = append(r.elems, e)
		}
		return r, nil
	}
	return reply{}, fmt.Errorf("%w: unknown reply type %q", errProtocol, r.kind)
}

// readLine returns the next line without its CRLF. The slice aliases the
// reader's buffer and is valid until the next read.
func readLine(rd *bufio.Reader) ([]byte, error) {
	line, err := rd.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, fmt.Errorf("%w: line too long", errProtocol)
	}
	if err != nil {
		return nil, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("%w: line not terminated by CRLF", errProtocol)
	}
	return line[:len(line)-2], nil
}

// err returns the reply as an error when it is an error reply.
func (r reply) err() error {
	if r.kind == '-' {
		return parseServerError(string(r.str))
	}
	return nil
}

// unexpected describes a reply of the wrong type for the command.
func (r reply) unexpected(cmd string) error {
	return fmt.Errorf("%w: unexpected reply type %q to %s", errProtocol, r.kind, cmd)
}

// Command encoding: a RESP array of bulk strings. Commands are built once into
// a byte slice and copied into a connection's output buffer, so building needs
// no lock and writing is one append.

func appendArrayLen(b []byte, n int) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, '\r', '\n')
}

func appendBulkString(b []byte, s string) []byte {
	b = append(b, '$')
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, '\r', '\n')
	b = append(b, s...)
	return append(b, '\r', '\n')
}

func appendBulk(b []byte, p []byte) []byte {
	b = append(b, '$')
	b = strconv.AppendInt(b, int64(len(p)), 10)
	b = append(b, '\r', '\n')
	b = append(b, p...)
	return append(b, '\r', '\n')
}

func appendBulkInt(b []byte, n int64) []byte {
	var tmp [20]byte
	return appendBulk(b, strconv.AppendInt(tmp[:0], n, 10))
}

// command builds a command from string arguments.
func command(args ...string) []byte {
	size := 16
	for _, a := range args {
		size += len(a) + 16
	}
	b := appendArrayLen(make([]byte, 0, size), len(args))
	for _, a := range args {
		b = appendBulkString(b, a)
	}
	return b
}
