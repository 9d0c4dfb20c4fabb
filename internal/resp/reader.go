package resp

import (
	"bytes"
	"errors"
	"io"
	"math"
)

// ProtocolError is malformed client input. The server answers it with
// "ERR Protocol error: <msg>" and closes the connection, as Redis does: after a
// framing error nothing that follows on the stream can be trusted.
type ProtocolError struct{ msg string }

func (e *ProtocolError) Error() string { return "Protocol error: " + e.msg }

// Parse errors. The texts are Redis 7's, so clients and operators see what they
// know; errMissingCRLF is ours because Redis does not check the bytes after a bulk.
var (
	errMultibulkLen   = &ProtocolError{"invalid multibulk length"}
	errBulkLen        = &ProtocolError{"invalid bulk length"}
	errBigMbulkCount  = &ProtocolError{"too big mbulk count string"}
	errBigBulkCount   = &ProtocolError{"too big bulk count string"}
	errBigInline      = &ProtocolError{"too big inline request"}
	errUnbalanced     = &ProtocolError{"unbalanced quotes in request"}
	errMissingCRLF    = &ProtocolError{"expected CRLF after bulk data"}
	errQueryBufferMax = &ProtocolError{"command exceeds the query buffer limit"}
)

// errClientMemory ends a connection closed to keep all clients' buffers
// under the server's cap (Config.MaxClientMemory).
var errClientMemory = errors.New("resp: client buffers over max-client-memory; connection closed")

// errHTTP reports a client that speaks HTTP to the RESP port. It is dropped
// without a reply, like Redis does: a browser tricked into posting to the port
// must not be able to run commands or read answers.
var errHTTP = errors.New("resp: HTTP request on the RESP port")

const (
	// maxHeaderLine bounds a "*N" or "$N" line; 20 digits and a sign fit well
	// within it, so anything longer is garbage, not a slow client.
	maxHeaderLine = 64
	// maxInline is Redis' PROTO_INLINE_MAX_SIZE.
	maxInline = 64 << 10
	// initialBuf is the per-connection read buffer. Most commands are far
	// smaller, and the buffer drops back to this size once a large command is done.
	initialBuf = 16 << 10
)

// Limits bound what one client may make the server hold. Every limit is checked
// against declared lengths before the data is read, and the read buffer grows
// only as bytes actually arrive, so a client cannot make the server allocate
// memory it has not sent.
type Limits struct {
	MaxArgs  int // elements in one command
	MaxBulk  int // bytes in one argument
	MaxQuery int // bytes of one command, framing included
}

// span locates an argument relative to the start of the command being parsed.
// Offsets rather than slices survive the buffer being compacted or grown while a
// command is only partly received.
type span struct{ start, end int }

// Reader parses client commands (RESP multibulk or inline) from a stream. It is
// not safe for concurrent use. The arguments it returns alias its buffer and are
// valid only until the next call to Fill.
type Reader struct {
	rd  io.Reader
	lim Limits

	buf  []byte
	r, w int // buf[r:w] is unparsed input

	// State of a multibulk command that is only partly buffered, so that a
	// command arriving in many reads is not re-parsed from its start each time.
	inCmd  bool
	nargs  int
	pos    int // resume offset, relative to r
	spans  []span
	args   [][]byte
	closed error

	// grow, when set, is told of every change in the buffer's size; when
	// it refuses a growth, Fill fails with errClientMemory.
	grow func(delta int) bool
}

// NewReader returns a Reader on rd.
func NewReader(rd io.Reader, lim Limits) *Reader {
	return &Reader{rd: rd, lim: lim, buf: make([]byte, initialBuf)}
}

// SetGrowHook sets the function told of every change in the buffer's size
// (see Reader.grow); nil removes it.
func (r *Reader) SetGrowHook(grow func(delta int) bool) { r.grow = grow }

// Cap is the size of the read buffer.
func (r *Reader) Cap() int { return len(r.buf) }

// SetLimits changes the limits for the commands not yet started; the server
// tightens them until a client has authenticated, as Redis does.
func (r *Reader) SetLimits(lim Limits) { r.lim = lim }

// Buffered returns the number of input bytes not yet parsed.
func (r *Reader) Buffered() int { return r.w - r.r }

// Fill reads more input, blocking until some arrives. Arguments returned by
// Next before the call are invalid afterwards.
func (r *Reader) Fill() error {
	if r.closed != nil {
		return r.closed
	}
	if r.r == r.w {
		r.r, r.w = 0, 0
		if len(r.buf) > initialBuf {
			// Give back the memory of a large command once it is done.
			if r.grow != nil {
				r.grow(initialBuf - len(r.buf))
			}
			r.buf = make([]byte, initialBuf)
		}
	}
	if r.r > 0 {
		n := copy(r.buf, r.buf[r.r:r.w])
		r.r, r.w = 0, n
	}
	if r.w == len(r.buf) {
		// A single unfinished command fills the buffer. Its declared lengths were
		// checked against MaxQuery, so growing is bounded; doubling keeps the
		// allocation within twice what the client has really sent.
		size := min(2*len(r.buf), r.lim.MaxQuery+maxHeaderLine)
		if size <= len(r.buf) {
			return errQueryBufferMax
		}
		if r.grow != nil && !r.grow(size-len(r.buf)) {
			r.closed = errClientMemory
			return errClientMemory
		}
		nb := make([]byte, size)
		copy(nb, r.buf[:r.w])
		r.buf = nb
	}
	n, err := r.rd.Read(r.buf[r.w:])
	r.w += n
	if n > 0 {
		return nil
	}
	if errors.Is(err, errWouldBlock) {
		return err // an event loop's socket has nothing yet: not an end
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	r.closed = err
	return err
}

// Next parses the next complete command from the buffered input without reading.
// It returns nil args and a nil error when no complete command is buffered; the
// caller then flushes its replies and calls Fill. Empty commands are skipped.
func (r *Reader) Next() ([][]byte, error) {
	for r.r < r.w {
		var (
			args [][]byte
			err  error
		)
		if r.inCmd || r.buf[r.r] == '*' {
			args, err = r.multibulk()
		} else {
			args, err = r.inline()
		}
		if err != nil || args == nil {
			return nil, err
		}
		if len(args) > 0 {
			return args, nil
		}
	}
	return nil, nil
}

// multibulk parses "*N\r\n" followed by N "$len\r\ndata\r\n" elements. It
// returns nil, nil when more input is needed and an empty non-nil slice for an
// empty command.
func (r *Reader) multibulk() ([][]byte, error) {
	b := r.buf[r.r:r.w]
	if !r.inCmd {
		n, hl, err := header(b, errBigMbulkCount, errMultibulkLen)
		if hl == 0 || err != nil {
			return nil, err
		}
		if n <= 0 {
			r.r += hl
			return [][]byte{}, nil
		}
		if n > int64(r.lim.MaxArgs) {
			return nil, errMultibulkLen
		}
		r.inCmd, r.nargs, r.pos = true, int(n), hl
		r.spans = r.spans[:0]
	}
	for len(r.spans) < r.nargs {
		rest := b[r.pos:]
		if len(rest) == 0 {
			return nil, nil
		}
		if rest[0] != '$' {
			return nil, &ProtocolError{"expected '$', got '" + printable(rest[0]) + "'"}
		}
		n, hl, err := header(rest, errBigBulkCount, errBulkLen)
		if hl == 0 || err != nil {
			return nil, err
		}
		if n < 0 || n > int64(r.lim.MaxBulk) {
			return nil, errBulkLen
		}
		end := r.pos + hl + int(n)
		if end+2 > r.lim.MaxQuery {
			return nil, errQueryBufferMax
		}
		if end+2 > len(b) {
			return nil, nil
		}
		if b[end] != '\r' || b[end+1] != '\n' {
			return nil, errMissingCRLF
		}
		r.spans = append(r.spans, span{r.pos + hl, end})
		r.pos = end + 2
	}
	r.args = r.args[:0]
	for _, s := range r.spans {
		r.args = append(r.args, b[s.start:s.end:s.end])
	}
	r.r += r.pos
	r.inCmd = false
	return r.args, nil
}

// header parses a "<type><int>\r\n" line at the start of b. hl is 0 when the
// line is not complete yet.
func header(b []byte, tooBig, invalid error) (n int64, hl int, err error) {
	lim := min(len(b), maxHeaderLine)
	i := bytes.IndexByte(b[:lim], '\n')
	if i < 0 {
		if len(b) >= maxHeaderLine {
			return 0, 0, tooBig
		}
		return 0, 0, nil
	}
	if i < 2 || b[i-1] != '\r' {
		return 0, 0, invalid
	}
	n, ok := parseInt(b[1 : i-1])
	if !ok {
		return 0, 0, invalid
	}
	return n, i + 1, nil
}

// parseInt parses a decimal int64 the way Redis' string2ll does: an optional
// '-', no '+', no leading zeros, no spaces, no overflow.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	if len(b) == 1 && b[0] == '0' {
		return 0, true
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	if b[0] < '1' || b[0] > '9' {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	if neg {
		if v > 1<<63 {
			return 0, false
		}
		return int64(-v), true //nolint:gosec // checked: -v fits, 1<<63 wraps to MinInt64.
	}
	if v > math.MaxInt64 {
		return 0, false
	}
	return int64(v), true
}

// inline parses a telnet-style line: space-separated words with Redis' quoting
// rules. Escapes are decoded in place, which is safe because decoding never
// makes an argument longer and the line is consumed.
func (r *Reader) inline() ([][]byte, error) {
	b := r.buf[r.r:r.w]
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		if len(b) > maxInline {
			return nil, errBigInline
		}
		return nil, nil
	}
	if i > maxInline {
		return nil, errBigInline
	}
	line := b[:i]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	args, err := splitArgs(line, r.args[:0])
	if err != nil {
		return nil, err
	}
	r.args = args
	r.r += i + 1
	if len(args) > r.lim.MaxArgs {
		return nil, errMultibulkLen
	}
	if looksLikeHTTP(args) {
		return nil, errHTTP
	}
	if args == nil {
		args = [][]byte{}
	}
	return args, nil
}

// looksLikeHTTP reports a request line such as "GET / HTTP/1.1". Header lines
// ("Host:") and POST are caught by the command dispatcher for both framings.
func looksLikeHTTP(args [][]byte) bool {
	return len(args) == 3 && bytes.HasPrefix(args[2], []byte("HTTP/"))
}

// splitArgs splits an inline line like Redis' sdssplitargs: double quotes with
// C escapes (\n \r \t \b \a \\ \" \xHH), single quotes with \' only, and a
// closing quote must be followed by a space or the end of the line.
func splitArgs(line []byte, args [][]byte) ([][]byte, error) {
	i := 0
	for {
		for i < len(line) && isSpace(line[i]) {
			i++
		}
		if i == len(line) {
			return args, nil
		}
		start, out := i, i // out is the write position for in-place decoding
		switch line[i] {
		case '"':
			i++
			for {
				if i >= len(line) {
					return nil, errUnbalanced
				}
				c := line[i]
				if c == '\\' && i+3 < len(line) && line[i+1] == 'x' && isHex(line[i+2]) && isHex(line[i+3]) {
					line[out] = unhex(line[i+2])<<4 | unhex(line[i+3])
					i += 4
				} else if c == '\\' && i+1 < len(line) {
					switch e := line[i+1]; e {
					case 'n':
						line[out] = '\n'
					case 'r':
						line[out] = '\r'
					case 't':
						line[out] = '\t'
					case 'b':
						line[out] = '\b'
					case 'a':
						line[out] = '\a'
					default:
						line[out] = e
					}
					i += 2
				} else if c == '"' {
					i++
					if i < len(line) && !isSpace(line[i]) {
						return nil, errUnbalanced
					}
					break
				} else {
					line[out] = c
					i++
				}
				out++
			}
		case '\'':
			i++
			for {
				if i >= len(line) {
					return nil, errUnbalanced
				}
				c := line[i]
				if c == '\\' && i+1 < len(line) && line[i+1] == '\'' {
					line[out] = '\''
					i += 2
				} else if c == '\'' {
					i++
					if i < len(line) && !isSpace(line[i]) {
						return nil, errUnbalanced
					}
					break
				} else {
					line[out] = c
					i++
				}
				out++
			}
		default:
			for i < len(line) && !isSpace(line[i]) {
				i++
			}
			out = i
		}
		args = append(args, line[start:out:out])
	}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// printable renders one input byte for an error message without letting
// control characters into the reply line.
func printable(c byte) string {
	if c < 0x20 || c >= 0x7f {
		return "?"
	}
	return string(rune(c))
}
