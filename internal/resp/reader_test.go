package resp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"testing"

	"github.com/tidwall/redcon"
)

var testLimits = Limits{MaxArgs: 1 << 20, MaxBulk: 1 << 20, MaxQuery: 4 << 20}

// chunkReader returns its input in chunks of the given sizes, cycling.
type chunkReader struct {
	data  []byte
	sizes []int
	i     int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := len(r.data)
	if len(r.sizes) > 0 {
		n = min(n, max(r.sizes[r.i%len(r.sizes)], 1))
		r.i++
	}
	n = copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// readAllCommands parses everything in rd, copying the arguments out.
func readAllCommands(rd *Reader) ([][]string, error) {
	var out [][]string
	for {
		args, err := rd.Next()
		if err != nil {
			return out, err
		}
		if args == nil {
			if err := rd.Fill(); err != nil {
				return out, err
			}
			continue
		}
		cmd := make([]string, len(args))
		for i, a := range args {
			cmd[i] = string(a)
		}
		out = append(out, cmd)
	}
}

// encode is a reference RESP encoder for commands.
func encode(cmds ...[]string) []byte {
	var b bytes.Buffer
	for _, c := range cmds {
		fmt.Fprintf(&b, "*%d\r\n", len(c))
		for _, a := range c {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
	}
	return b.Bytes()
}

func TestReaderParses(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want [][]string
	}{
		{"multibulk", "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", [][]string{{"GET", "k"}}},
		{"empty bulk", "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", [][]string{{"ECHO", ""}}},
		{"binary bulk", "*2\r\n$4\r\nECHO\r\n$4\r\n\r\n\x00\xff\r\n", [][]string{{"ECHO", "\r\n\x00\xff"}}},
		{"empty commands skipped", "*0\r\n*-1\r\n\r\n   \r\nPING\r\n", [][]string{{"PING"}}},
		{"inline LF only", "SET a b\nGET a\n", [][]string{{"SET", "a", "b"}, {"GET", "a"}}},
		{"inline quotes", `SET "a b" 'c d' "\x41\t"` + "\r\n", [][]string{{"SET", "a b", "c d", "A\t"}}},
		{"inline empty quoted", `ECHO ""` + "\r\n", [][]string{{"ECHO", ""}}},
		{"mixed", "PING\r\n*1\r\n$4\r\nPING\r\nPING\r\n", [][]string{{"PING"}, {"PING"}, {"PING"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, sizes := range [][]int{nil, {1}, {2, 3, 5}} {
				rd := NewReader(&chunkReader{data: []byte(tc.in), sizes: sizes}, testLimits)
				got, err := readAllCommands(rd)
				if !errors.Is(err, io.EOF) {
					t.Fatalf("chunks %v: err %v", sizes, err)
				}
				if fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Fatalf("chunks %v: got %q, want %q", sizes, got, tc.want)
				}
			}
		})
	}
}

// TestReaderBoundsMemory checks that declared lengths allocate nothing: a
// client announcing a huge bulk, then sending little, leaves the buffer small.
func TestReaderBoundsMemory(t *testing.T) {
	in := []byte("*2\r\n$3\r\nSET\r\n$1000000\r\n" + string(make([]byte, 1000)))
	rd := NewReader(&chunkReader{data: in}, testLimits)
	_, err := readAllCommands(rd)
	if !errors.Is(err, io.EOF) {
		t.Fatalf("err %v, want EOF on a truncated command", err)
	}
	if cap(rd.buf) > initialBuf {
		t.Fatalf("buffer grew to %d bytes for %d bytes received", cap(rd.buf), len(in))
	}
	// A command over MaxQuery is refused as soon as its bulk header says so.
	rd = NewReader(&chunkReader{data: encode([]string{"MSET", "a", string(make([]byte, 3000)), "b", string(make([]byte, 3000))})},
		Limits{MaxArgs: 10, MaxBulk: 4000, MaxQuery: 5000})
	_, err = readAllCommands(rd)
	if !errors.Is(err, errQueryBufferMax) {
		t.Fatalf("err %v, want %v", err, errQueryBufferMax)
	}
}

// TestReaderGrowsAndShrinks parses a command far larger than the initial
// buffer, arriving in small reads, and checks the buffer shrinks afterwards.
func TestReaderGrowsAndShrinks(t *testing.T) {
	big := string(bytes.Repeat([]byte("x"), 300_000))
	in := encode([]string{"SET", "k", big}, []string{"PING"})
	rd := NewReader(&chunkReader{data: in, sizes: []int{4096}}, testLimits)
	args, err := nextCommand(rd)
	if err != nil || len(args) != 3 || string(args[2]) != big {
		t.Fatalf("big command: %d args, err %v", len(args), err)
	}
	args, err = nextCommand(rd)
	if err != nil || string(args[0]) != "PING" {
		t.Fatalf("after big command: %q, %v", args, err)
	}
	_ = rd.Fill() // EOF; the drained buffer is given back first
	if cap(rd.buf) != initialBuf {
		t.Fatalf("buffer is %d bytes after the large command, want %d", cap(rd.buf), initialBuf)
	}
}

func nextCommand(rd *Reader) ([][]byte, error) {
	for {
		args, err := rd.Next()
		if err != nil || args != nil {
			return args, err
		}
		if err := rd.Fill(); err != nil {
			return nil, err
		}
	}
}

func TestParseInt(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "1": 1, "-1": -1, "9223372036854775807": 1<<63 - 1, "-9223372036854775808": -1 << 63,
	} {
		if got, ok := parseInt([]byte(in)); !ok || got != want {
			t.Errorf("parseInt(%q) = %d, %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "-", "+1", "01", "-0", "1 ", " 1", "9223372036854775808", "-9223372036854775809", "1e3", "99999999999999999999"} {
		if _, ok := parseInt([]byte(in)); ok {
			t.Errorf("parseInt(%q) accepted", in)
		}
	}
}

func TestGlobMatch(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{"*", "", true}, {"*", "abc", true}, {"a*", "abc", true}, {"a*", "bac", false},
		{"*c", "abc", true}, {"a*b*c", "axxbyyc", true}, {"a*b*c", "axxbyy", false},
		{"h?llo", "hello", true}, {"h?llo", "hllo", false},
		{"h[ae]llo", "hallo", true}, {"h[ae]llo", "hillo", false},
		{"h[^e]llo", "hallo", true}, {"h[^e]llo", "hello", false},
		{"h[a-b]llo", "hbllo", true}, {"h[a-b]llo", "hcllo", false},
		{`h\*llo`, "h*llo", true}, {`h\*llo`, "hello", false},
		{"user:[", "user:[", true}, {"", "", true}, {"", "a", false},
		{"*a*a*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
	} {
		if got := globMatch([]byte(tc.p), []byte(tc.s)); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v", tc.p, tc.s, got)
		}
	}
}

// FuzzReader feeds arbitrary bytes, split at arbitrary points, to the Reader:
// it must never panic or loop, and input produced by a correct encoder from
// the same bytes must parse back exactly.
func FuzzReader(f *testing.F) {
	for _, s := range []string{
		"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
		"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n",
		"PING\r\nSET a \"b c\"\r\n",
		"*1\r\n$-1\r\n", "*x\r\n", "$3\r\nfoo\r\n", "*2\r\n$3\r\nGET\r\n:1\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "ECHO '\\'\r\n", "*0\r\n*-1\r\n",
		"*1\r\n$4\r\nPINGxx\r\n",
	} {
		f.Add([]byte(s), uint8(1), uint8(3))
		f.Add([]byte(s), uint8(0), uint8(0))
	}
	f.Fuzz(func(t *testing.T, data []byte, split1, split2 uint8) {
		lim := Limits{MaxArgs: 64, MaxBulk: 4096, MaxQuery: 1 << 16}
		sizes := []int{int(split1), int(split2)}

		// Arbitrary bytes: any outcome but a panic or a hang is fine.
		rd := NewReader(&chunkReader{data: bytes.Clone(data), sizes: sizes}, lim)
		for range len(data) + 2 {
			args, err := rd.Next()
			if err != nil {
				break
			}
			if args == nil && rd.Fill() != nil {
				break
			}
		}

		// The same bytes as arguments, split on NUL, through a real encoder,
		// within the limits (a longer argument is rightly refused): at most
		// MaxArgs arguments of MaxBulk bytes, half of MaxQuery in all, which
		// leaves room for the framing.
		if len(data) > lim.MaxQuery/2 {
			data = data[:lim.MaxQuery/2]
		}
		parts := bytes.Split(data, []byte{0})
		if len(parts) > lim.MaxArgs {
			parts = parts[:lim.MaxArgs]
		}
		cmd := make([]string, len(parts))
		for i, p := range parts {
			cmd[i] = string(p[:min(len(p), lim.MaxBulk)])
		}
		enc := encode(cmd, []string{"PING"})
		rd = NewReader(&chunkReader{data: enc, sizes: sizes}, lim)
		got, err := readAllCommands(rd)
		if !errors.Is(err, io.EOF) {
			t.Fatalf("encoded command: err %v", err)
		}
		if len(got) != 2 || !equalStrings(got[0], cmd) || got[1][0] != "PING" {
			t.Fatalf("encoded %q parsed as %q", cmd, got)
		}
	})
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// benchInput is a pipeline of 100 SET commands with 64-byte values, what
// redis-benchmark -P sends.
func benchInput() []byte {
	var cmds [][]string
	val := string(bytes.Repeat([]byte("v"), 64))
	for i := range 100 {
		cmds = append(cmds, []string{"SET", "key:" + strconv.Itoa(i), val})
	}
	return encode(cmds...)
}

// loopReader serves the same bytes again and again.
type loopReader struct {
	data []byte
	off  int
}

func (r *loopReader) Read(p []byte) (int, error) {
	n := copy(p, r.data[r.off:])
	r.off = (r.off + n) % len(r.data)
	return n, nil
}

func BenchmarkParse(b *testing.B) {
	in := benchInput()
	rd := NewReader(&loopReader{data: in}, testLimits)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		for n := 0; n < 100; {
			args, err := rd.Next()
			if err != nil {
				b.Fatal(err)
			}
			if args == nil {
				if err := rd.Fill(); err != nil {
					b.Fatal(err)
				}
				continue
			}
			n++
		}
	}
}

// BenchmarkRedconReader parses the same input with tidwall/redcon's Reader,
// the library this package's reader replaces.
func BenchmarkRedconReader(b *testing.B) {
	in := benchInput()
	rd := redcon.NewReader(&loopReader{data: in})
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		for n := 0; n < 100; n++ {
			if _, err := rd.ReadCommand(); err != nil {
				b.Fatal(err)
			}
		}
	}
}
