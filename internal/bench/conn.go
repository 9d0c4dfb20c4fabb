package bench

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// errProtocol is a reply the bench cannot parse: the server broke framing,
// so the connection cannot be used further.
var errProtocol = errors.New("bench: protocol error in reply")

// maxErrorBytes bounds an error reply the bench keeps as a sample.
const maxErrorBytes = 256

// replyReader parses RESP2 and RESP3 replies just far enough to frame them
// and to tell an error reply from any other, and discards their contents: a
// load generator needs no values, and skipping them keeps it cheap.
type replyReader struct {
	br *bufio.Reader
}

func newReplyReader(r io.Reader) *replyReader {
	return &replyReader{br: bufio.NewReaderSize(r, 64<<10)}
}

// next reads one whole reply. It returns the message of an error reply (a
// server error, not a Go error), or a non-nil err when the stream failed or
// broke framing.
func (r *replyReader) next() (serverErr string, err error) {
	return r.reply(0)
}

// maxNesting bounds aggregate nesting so a hostile server cannot recurse us
// out of stack.
const maxNesting = 32

func (r *replyReader) reply(depth int) (string, error) {
	if depth > maxNesting {
		return "", fmt.Errorf("%w: aggregates nested deeper than %d", errProtocol, maxNesting)
	}
	line, err := r.line()
	if err != nil {
		return "", err
	}
	if len(line) == 0 {
		return "", fmt.Errorf("%w: empty line", errProtocol)
	}
	switch line[0] {
	case '+', ':', ',', '#', '(', '_':
		return "", nil
	case '-':
		return errorText(line[1:]), nil
	case '$', '=':
		n, err := length(line)
		if err != nil || n < 0 {
			return "", err // $-1 is the RESP2 null
		}
		return "", r.skip(n + 2)
	case '!':
		n, err := length(line)
		if err != nil || n < 0 {
			return "", err
		}
		msg, err := r.br.Peek(min(int(n), maxErrorBytes))
		text := errorText(msg)
		if err != nil {
			return "", fmt.Errorf("bench: read reply: %w", err)
		}
		return text, r.skip(n + 2)
	case '*', '~', '>', '%', '|':
		n, err := length(line)
		if err != nil || n < 0 {
			return "", err // *-1 is the RESP2 null array
		}
		if line[0] == '%' || line[0] == '|' {
			n *= 2
		}
		first := ""
		for range n {
			msg, err := r.reply(depth + 1)
			if err != nil {
				return "", err
			}
			if first == "" {
				first = msg
			}
		}
		if line[0] == '|' {
			// An attribute annotates the reply that follows it.
			return r.reply(depth)
		}
		return first, nil
	}
	return "", fmt.Errorf("%w: unknown type byte %q", errProtocol, line[0])
}

// line returns the next line without its CRLF; it is valid until the next read.
func (r *replyReader) line() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("%w: header line longer than %d bytes", errProtocol, r.br.Size())
		}
		return nil, fmt.Errorf("bench: read reply: %w", err)
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("%w: line not ended by CRLF", errProtocol)
	}
	return line[:len(line)-2], nil
}

func (r *replyReader) skip(n int64) error {
	for n > 0 {
		d, err := r.br.Discard(int(min(n, 1<<30)))
		n -= int64(d)
		if err != nil {
			return fmt.Errorf("bench: read reply: %w", err)
		}
	}
	return nil
}

// length parses the count or length after a type byte; -1 means null.
func length(line []byte) (int64, error) {
	n, err := strconv.ParseInt(string(line[1:]), 10, 64)
	if err != nil || n < -1 {
		return 0, fmt.Errorf("%w: bad length %q", errProtocol, line)
	}
	return n, nil
}

func errorText(b []byte) string {
	if len(b) > maxErrorBytes {
		b = b[:maxErrorBytes]
	}
	if len(b) == 0 {
		return "(empty error)"
	}
	return string(b)
}

// value reads one whole reply and decodes it: int64 for integers, string for
// simple and bulk strings, []any for arrays, sets and pushes, nil for nulls,
// and an error reply as a Go error of type serverError. It is for the few
// replies whose contents the bench needs (CLUSTER SLOTS), never the load.
func (r *replyReader) value(depth int) (any, error) {
	if depth > maxNesting {
		return nil, fmt.Errorf("%w: aggregates nested deeper than %d", errProtocol, maxNesting)
	}
	line, err := r.line()
	if err != nil {
		return nil, err
	}
	if len(line) == 0 {
		return nil, fmt.Errorf("%w: empty line", errProtocol)
	}
	switch line[0] {
	case '+':
		return string(line[1:]), nil
	case '-':
		return nil, serverError(errorText(line[1:]))
	case ':':
		n, err := strconv.ParseInt(string(line[1:]), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: bad integer %q", errProtocol, line)
		}
		return n, nil
	case '_':
		return nil, nil
	case '$', '=':
		n, err := length(line)
		if err != nil || n < 0 {
			return nil, err
		}
		if n > int64(r.br.Size()) {
			return nil, fmt.Errorf("%w: bulk string of %d bytes where a short one was expected", errProtocol, n)
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(r.br, b); err != nil {
			return nil, fmt.Errorf("bench: read reply: %w", err)
		}
		return string(b[:n]), nil
	case '*', '~', '>':
		n, err := length(line)
		if err != nil || n < 0 {
			return nil, err
		}
		if n > 1<<20 {
			return nil, fmt.Errorf("%w: array of %d elements", errProtocol, n)
		}
		out := make([]any, 0, n)
		for range n {
			v, err := r.value(depth + 1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: type byte %q where a topology reply was expected", errProtocol, line[0])
}

// serverError is an error reply decoded by value.
type serverError string

func (e serverError) Error() string { return string(e) }
