package transport

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	payloads := [][]byte{nil, {0}, bytes.Repeat([]byte("ab"), 5000)}
	var b []byte
	for i, p := range payloads {
		b = appendFrame(b, kindResponse, uint64(1)<<40+uint64(i), uint8(200+i), p)
	}
	br := bufio.NewReader(bytes.NewReader(b))
	for i, p := range payloads {
		f, err := readFrame(br, 1<<20)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.kind != kindResponse || f.id != uint64(1)<<40+uint64(i) || f.method != uint8(200+i) || !bytes.Equal(f.payload, p) {
			t.Errorf("frame %d = %+v", i, f)
		}
	}
	if _, err := readFrame(br, 1<<20); !errors.Is(err, io.EOF) {
		t.Errorf("after last frame: err = %v, want EOF", err)
	}
}

func TestReadFrameRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		in   []byte
		want error
	}{
		"too large":    {appendFrame(nil, kindRequest, 1, 0, make([]byte, 100)), ErrFrameTooLarge},
		"short length": {[]byte{0, 0, 0, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}, ErrProtocol},
		"bad kind":     {appendFrame(nil, 9, 1, 0, nil), ErrProtocol},
		"truncated":    {appendFrame(nil, kindRequest, 1, 0, []byte("abc"))[:15], io.ErrUnexpectedEOF},
	} {
		_, err := readFrame(bufio.NewReader(bytes.NewReader(tc.in)), 64)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", name, err, tc.want)
		}
	}
}

func TestHandshakeRoundTrip(t *testing.T) {
	in := handshake{nodeID: "node-7", maxFrame: 1 << 26}
	got, err := readHandshake(bytes.NewReader(appendHandshake(nil, in)))
	if err != nil || got != in {
		t.Fatalf("readHandshake = %+v, %v; want %+v", got, err, in)
	}
}

// FuzzReadFrame feeds arbitrary bytes to the frame and handshake parsers,
// which face the network: they must fail cleanly, never panic or allocate past
// the limit, and accept exactly what the encoder produces.
func FuzzReadFrame(f *testing.F) {
	f.Add(appendFrame(nil, kindRequest, 1, 2, []byte("hello")))
	f.Add(appendFrame(appendFrame(nil, kindError, 3, 0, []byte("no")), kindResponse, 4, 1, nil))
	f.Add(appendHandshake(nil, handshake{nodeID: "n1", maxFrame: 1 << 20}))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		const limit = 1 << 16
		if hs, err := readHandshake(bytes.NewReader(in)); err == nil {
			again, err := readHandshake(bytes.NewReader(appendHandshake(nil, hs)))
			if err != nil || again != hs {
				t.Fatalf("handshake %+v does not round-trip: %+v, %v", hs, again, err)
			}
		}
		br := bufio.NewReader(bytes.NewReader(in))
		for {
			fr, err := readFrame(br, limit)
			if err != nil {
				return
			}
			if len(fr.payload)+frameOverhead > limit {
				t.Fatalf("accepted a %d byte payload over the %d limit", len(fr.payload), limit)
			}
			enc := appendFrame(nil, fr.kind, fr.id, fr.method, fr.payload)
			back, err := readFrame(bufio.NewReader(bytes.NewReader(enc)), limit)
			if err != nil || back.id != fr.id || back.kind != fr.kind || back.method != fr.method || !bytes.Equal(back.payload, fr.payload) {
				t.Fatalf("frame %+v does not round-trip: %+v, %v", fr, back, err)
			}
		}
	})
}
