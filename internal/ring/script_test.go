package ring

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// rewrite regenerates the expected output of testdata scripts: review the diff
// before committing it.
var rewrite = flag.Bool("rewrite", false, "rewrite testdata scripts with the actual output")

// scriptCase is one command of a testdata script, in the style of
// cockroachdb/datadriven: a command line, optional input lines, "----", and
// the expected output up to a blank line.
type scriptCase struct {
	comments []string // lines before the command, kept on rewrite
	pos      string
	cmd      string
	args     map[string]string
	input    []string
	want     string
}

func parseScript(tb testing.TB, path string) (cases []scriptCase, trailer []string) {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	var pending []string
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			pending = append(pending, line)
			continue
		}
		c := scriptCase{comments: pending, pos: fmt.Sprintf("%s:%d", path, i+1), args: map[string]string{}}
		pending = nil
		fields := strings.Fields(line)
		c.cmd = fields[0]
		for _, f := range fields[1:] {
			k, v, _ := strings.Cut(f, "=")
			c.args[k] = v
		}
		for i++; i < len(lines) && lines[i] != "----"; i++ {
			c.input = append(c.input, lines[i])
		}
		if i == len(lines) {
			tb.Fatalf("%s: command without ----", c.pos)
		}
		var out []string
		for i++; i < len(lines) && lines[i] != ""; i++ {
			out = append(out, lines[i])
		}
		c.want = strings.Join(out, "\n")
		if i < len(lines) {
			i-- // let the blank line be read as a separator
		}
		cases = append(cases, c)
	}
	return cases, pending
}

// runScript runs every case of the script at path through do and compares (or,
// with -rewrite, replaces) the expected output.
func runScript(t *testing.T, path string, do func(t *testing.T, c scriptCase) string) {
	t.Helper()
	cases, trailer := parseScript(t, path)
	var b strings.Builder
	for _, c := range cases {
		got := strings.TrimRight(do(t, c), "\n")
		if !*rewrite && got != c.want {
			t.Errorf("%s: %s\n got:\n%s\nwant:\n%s", c.pos, c.cmd, got, c.want)
		}
		for _, l := range c.comments {
			b.WriteString(l + "\n")
		}
		line := c.cmd
		for _, k := range slices.Sorted(maps.Keys(c.args)) {
			line += " " + k + "=" + c.args[k]
		}
		b.WriteString(line + "\n")
		for _, l := range c.input {
			b.WriteString(l + "\n")
		}
		b.WriteString("----\n" + got + "\n")
	}
	for _, l := range trailer {
		b.WriteString(l + "\n")
	}
	if *rewrite {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func (c scriptCase) intArg(tb testing.TB, key string, def int) int {
	tb.Helper()
	v, ok := c.args[key]
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		tb.Fatalf("%s: %s=%q: %v", c.pos, key, v, err)
	}
	return n
}

// TestScripts runs testdata/*.txt. Commands:
//
//	ring vnodes=N rf=N     build a ring from input lines "id [zone]"
//	replicas               replicas of each input key
//	ranges                 every range with its replicas
//	ownership              primary and replica share of each node
//	moved keys=N           of N keys, how many changed primary or replica set
//	                       (order aside) since the previous ring, with the
//	                       primary moves counted by old -> new node
func TestScripts(t *testing.T) {
	paths, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			var r, prev *Ring
			runScript(t, path, func(t *testing.T, c scriptCase) string {
				if c.cmd != "ring" && r == nil {
					t.Fatalf("%s: %s before ring", c.pos, c.cmd)
				}
				var b strings.Builder
				switch c.cmd {
				case "ring":
					var nodes []Node
					for _, l := range c.input {
						f := strings.Fields(l)
						n := Node{ID: f[0]}
						if len(f) > 1 {
							n.Zone = f[1]
						}
						nodes = append(nodes, n)
					}
					prev = r
					r = New(nodes, c.intArg(t, "vnodes", 64), c.intArg(t, "rf", 3))
					fmt.Fprintf(&b, "nodes=%d tokens=%d rf=%d", r.Len(), len(r.tokens), r.RF())
				case "replicas":
					for _, k := range c.input {
						fmt.Fprintf(&b, "%s: %s\n", k, fmtNodes(r.Replicas([]byte(k))))
					}
				case "ranges":
					for _, g := range r.Ranges() {
						fmt.Fprintf(&b, "(%#016x, %#016x] %s\n", g.Start, g.End, fmtNodes(g.Replicas))
					}
				case "ownership":
					own, rep := r.Ownership(), r.ReplicaOwnership()
					for _, n := range r.Nodes() {
						fmt.Fprintf(&b, "%s: primary=%.4f replica=%.4f\n", n.ID, own[n.ID], rep[n.ID])
					}
				case "moved":
					if prev == nil {
						t.Fatalf("%s: moved needs two rings", c.pos)
					}
					keys := c.intArg(t, "keys", 10000)
					primary, sets := 0, 0
					by := map[string]int{}
					for i := range keys {
						k := []byte("key-" + strconv.Itoa(i))
						a, z := prev.Replicas(k), r.Replicas(k)
						if a[0].ID != z[0].ID {
							primary++
							by[a[0].ID+" -> "+z[0].ID]++
						}
						if !sameSet(a, z) {
							sets++
						}
					}
					fmt.Fprintf(&b, "primary moved: %d/%d\nreplica set changed: %d/%d\n", primary, keys, sets, keys)
					for _, k := range slices.Sorted(maps.Keys(by)) {
						fmt.Fprintf(&b, "  %s: %d\n", k, by[k])
					}
				default:
					t.Fatalf("%s: unknown command %q", c.pos, c.cmd)
				}
				return b.String()
			})
		})
	}
}

// sameSet reports whether a and b hold the same nodes, in any order.
func sameSet(a, b []Node) bool {
	ids := func(ns []Node) []string {
		out := make([]string, len(ns))
		for i, n := range ns {
			out[i] = n.ID
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(ids(a), ids(b))
}

func fmtNodes(ns []Node) string {
	var b strings.Builder
	for i, n := range ns {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(n.ID)
		if n.Zone != "" {
			b.WriteString("@" + n.Zone)
		}
	}
	return b.String()
}
