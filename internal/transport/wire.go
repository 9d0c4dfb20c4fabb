package transport

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Wire format (big endian).
//
// Handshake, sent by each side right after connecting, dialer first:
//
//	magic "RKVT" | version u8 | max frame u32 | id length u8 | node id
//
// The max frame lets each side refuse an oversized request locally instead of
// having the peer kill a connection that carries other calls.
//
// Frames, after the handshake:
//
//	length u32 | kind u8 | id u64 | method u8 | payload
//
// length counts everything after itself, so it is frameOverhead+len(payload).
const (
	protoVersion  = 1
	frameOverhead = 1 + 8 + 1 // kind, id, method
	frameHeader   = 4 + frameOverhead
	maxNodeID     = 255
	// minMaxFrame keeps error frames (which carry a message) always sendable.
	minMaxFrame = 4 << 10
)

var magic = [4]byte{'R', 'K', 'V', 'T'}

type frameKind uint8

const (
	kindRequest  frameKind = 1
	kindResponse frameKind = 2
	kindError    frameKind = 3 // payload is the handler's error message
)

// handshake is what each side announces.
type handshake struct {
	nodeID   string
	maxFrame uint32
}

func appendHandshake(b []byte, h handshake) []byte {
	b = append(b, magic[:]...)
	b = append(b, protoVersion)
	b = binary.BigEndian.AppendUint32(b, h.maxFrame)
	b = append(b, byte(len(h.nodeID)))
	return append(b, h.nodeID...)
}

// readHandshake reads and validates a peer's handshake. Anything that is not a
// ringkv peer of our version (an HTTP request, a port scanner, garbage) fails
// within the first bytes.
func readHandshake(r io.Reader) (handshake, error) {
	var hdr [4 + 1 + 4 + 1]byte
	if _, err := io.ReadFull(r, hdr[:4]); err != nil {
		return handshake{}, err
	}
	if [4]byte(hdr[:4]) != magic {
		return handshake{}, fmt.Errorf("%w: bad magic %q", ErrProtocol, hdr[:4])
	}
	if _, err := io.ReadFull(r, hdr[4:]); err != nil {
		return handshake{}, err
	}
	if v := hdr[4]; v != protoVersion {
		return handshake{}, fmt.Errorf("%w: unsupported version %d (want %d)", ErrProtocol, v, protoVersion)
	}
	maxFrame := binary.BigEndian.Uint32(hdr[5:9])
	if maxFrame < minMaxFrame {
		return handshake{}, fmt.Errorf("%w: max frame %d below %d", ErrProtocol, maxFrame, minMaxFrame)
	}
	id := make([]byte, hdr[9])
	if _, err := io.ReadFull(r, id); err != nil {
		return handshake{}, err
	}
	return handshake{nodeID: string(id), maxFrame: maxFrame}, nil
}

func appendFrame(b []byte, kind frameKind, id uint64, method uint8, payload []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(frameOverhead+len(payload)))
	b = append(b, byte(kind))
	b = binary.BigEndian.AppendUint64(b, id)
	b = append(b, method)
	return append(b, payload...)
}

// frame is a decoded frame; payload is freshly allocated and owned by the
// receiver.
type frame struct {
	kind    frameKind
	id      uint64
	method  uint8
	payload []byte
}

// Growing a large payload: a frame's length is only what the peer declares,
// so memory for it is taken as its bytes arrive, never up front (issue 30:
// twelve connections declaring 64 MiB frames and sending two bytes cost 512
// MiB). Payloads up to frameChunk are allocated at once, as before: that is
// every frame of the hot path, and a sender must have been let in to send
// one. Past it the buffer grows by doubling, each step at most maxGrowStep,
// so what a stalled frame holds is at most twice what it sent plus a chunk,
// and a real 16 MiB value is copied a handful of times.
const (
	frameChunk  = 64 << 10
	maxGrowStep = 4 << 20
)

// frameReader reads frames from one connection. With nc and timeout set, a
// frame that has begun must keep arriving: each wait for more of it may last
// timeout, after which the read fails and the connection is closed. Between
// frames it waits without a deadline, since a pooled peer connection idles
// legitimately for as long as no call needs it.
type frameReader struct {
	br      *bufio.Reader
	nc      net.Conn
	timeout time.Duration
	armed   bool // a read deadline is set on nc
}

// readFrame reads one frame from r with no deadline (tests, and callers
// without a connection).
func readFrame(r *bufio.Reader, maxFrame int) (frame, error) {
	fr := frameReader{br: r}
	return fr.read(maxFrame)
}

// arm gives the next wait for bytes of the current frame timeout.
func (fr *frameReader) arm() {
	if fr.nc == nil || fr.timeout <= 0 {
		return
	}
	_ = fr.nc.SetReadDeadline(time.Now().Add(fr.timeout))
	fr.armed = true
}

// read reads one frame, refusing any longer than maxFrame before allocating
// for it. The header is parsed where it lies in r's buffer: read into an
// array of its own, through io.ReadFull's interface, the array went to the
// heap, one allocation per frame.
func (fr *frameReader) read(maxFrame int) (frame, error) {
	r := fr.br
	if r.Buffered() == 0 {
		// Idle between frames: no deadline, and none left over from the
		// last frame's wait.
		if fr.armed {
			_ = fr.nc.SetReadDeadline(time.Time{})
			fr.armed = false
		}
		if _, err := r.Peek(1); err != nil {
			return frame{}, err
		}
	}
	if r.Buffered() < frameHeader {
		fr.arm()
	}
	hdr, err := r.Peek(frameHeader)
	if err != nil {
		if errors.Is(err, io.EOF) && len(hdr) > 0 {
			err = io.ErrUnexpectedEOF // as io.ReadFull reports a cut header
		}
		return frame{}, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n < frameOverhead {
		return frame{}, fmt.Errorf("%w: frame length %d below minimum %d", ErrProtocol, n, frameOverhead)
	}
	if uint64(n) > uint64(maxFrame) {
		return frame{}, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, maxFrame)
	}
	f := frame{
		kind:   frameKind(hdr[4]),
		id:     binary.BigEndian.Uint64(hdr[5:13]),
		method: hdr[13],
	}
	if f.kind < kindRequest || f.kind > kindError {
		return frame{}, fmt.Errorf("%w: unknown frame kind %d", ErrProtocol, f.kind)
	}
	_, _ = r.Discard(frameHeader) // cannot fail: Peek buffered it
	size := int(n - frameOverhead)
	if size <= frameChunk {
		if r.Buffered() < size {
			fr.arm()
		}
		f.payload = make([]byte, size)
		if _, err := io.ReadFull(r, f.payload); err != nil {
			return frame{}, unexpected(err)
		}
		return f, nil
	}
	f.payload, err = fr.readLarge(size)
	if err != nil {
		return frame{}, err
	}
	return f, nil
}

// readLarge reads a payload of size bytes, growing its buffer as they
// arrive (see frameChunk).
func (fr *frameReader) readLarge(size int) ([]byte, error) {
	buf := make([]byte, 0, frameChunk)
	for len(buf) < size {
		if len(buf) == cap(buf) {
			step := min(cap(buf), maxGrowStep)
			next := make([]byte, len(buf), min(size, cap(buf)+step))
			copy(next, buf)
			buf = next
		}
		if fr.br.Buffered() == 0 {
			fr.arm()
		}
		k, err := fr.br.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+k]
		if err != nil && len(buf) < size {
			return nil, unexpected(err)
		}
	}
	return buf, nil
}

// unexpected reports a frame cut short by EOF as io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
