package resp

import (
	"bufio"
	"strconv"
	"strings"
)

// Writer encodes replies in RESP2 or RESP3 into a buffered writer. Replies are
// only buffered; the connection loop flushes once the pipelined input is
// drained. Write errors stick in the bufio.Writer and surface at Flush.
type Writer struct {
	bw      *bufio.Writer
	proto   int // 2 or 3
	scratch [24]byte
}

func newWriter(bw *bufio.Writer) *Writer { return &Writer{bw: bw, proto: 2} }

// Flush sends the buffered replies.
func (w *Writer) Flush() error { return w.bw.Flush() }

// SimpleString writes "+s". s must not contain CR or LF.
func (w *Writer) SimpleString(s string) {
	w.bw.WriteByte('+')
	w.bw.WriteString(s)
	w.bw.WriteString("\r\n")
}

// OK writes the +OK reply.
func (w *Writer) OK() { w.bw.WriteString("+OK\r\n") }

// Error writes "-msg". msg starts with its prefix (ERR, NOAUTH, …). Line breaks
// are replaced by spaces, as Redis does, so an error cannot break framing.
func (w *Writer) Error(msg string) {
	if strings.ContainsAny(msg, "\r\n") {
		msg = strings.NewReplacer("\r", " ", "\n", " ").Replace(msg)
	}
	w.bw.WriteByte('-')
	w.bw.WriteString(msg)
	w.bw.WriteString("\r\n")
}

// Int writes ":n".
func (w *Writer) Int(n int64) { w.prefixed(':', n) }

// Bulk writes a bulk string.
func (w *Writer) Bulk(b []byte) {
	w.prefixed('$', int64(len(b)))
	w.bw.Write(b)
	w.bw.WriteString("\r\n")
}

// BulkString writes a bulk string.
func (w *Writer) BulkString(s string) {
	w.prefixed('$', int64(len(s)))
	w.bw.WriteString(s)
	w.bw.WriteString("\r\n")
}

// Null writes the null bulk string ("$-1" in RESP2, "_" in RESP3).
func (w *Writer) Null() {
	if w.proto == 3 {
		w.bw.WriteString("_\r\n")
		return
	}
	w.bw.WriteString("$-1\r\n")
}

// Array writes the header of an n-element array.
func (w *Writer) Array(n int) { w.prefixed('*', int64(n)) }

// Map writes the header of an n-pair map; RESP2 has no maps, so there it is a
// flat array of 2n elements, as Redis sends.
func (w *Writer) Map(n int) {
	if w.proto == 3 {
		w.prefixed('%', int64(n))
		return
	}
	w.prefixed('*', int64(2*n))
}

// Verbatim writes text that Redis sends as a verbatim string in RESP3 (INFO,
// CLIENT INFO) and as a bulk string in RESP2.
func (w *Writer) Verbatim(s string) {
	if w.proto == 3 {
		w.prefixed('=', int64(len(s)+4))
		w.bw.WriteString("txt:")
		w.bw.WriteString(s)
		w.bw.WriteString("\r\n")
		return
	}
	w.BulkString(s)
}

func (w *Writer) prefixed(c byte, n int64) {
	b := append(w.scratch[:0], c)
	b = strconv.AppendInt(b, n, 10)
	b = append(b, '\r', '\n')
	w.bw.Write(b)
}

// Set writes the header of an n-element set, an array in RESP2.
func (w *Writer) Set(n int) {
	if w.proto == 3 {
		w.prefixed('~', int64(n))
		return
	}
	w.prefixed('*', int64(n))
}
