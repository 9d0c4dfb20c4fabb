package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/ringkv/ringkv/internal/config"
)

// repoRoot is where the Makefile and deploy/ are, from this package.
const repoRoot = "../.."

// buildRingkv builds the binary once per test that needs its real output.
func buildRingkv(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ringkv")
	build := exec.Command("go", "build", "-o", bin, "./cmd/ringkv")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building ringkv: %v\n%s", err, out)
	}
	return bin
}

// helpFlags returns the flags `ringkv server --help` lists, but --config and
// --help, which a configuration file cannot set.
func helpFlags(t *testing.T, bin string) []string {
	t.Helper()
	out, err := exec.Command(bin, "server", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("ringkv server --help: %v\n%s", err, out)
	}
	var flags []string
	for _, m := range regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z0-9-]+)`).FindAllSubmatch(out, -1) {
		if name := string(m[1]); name != "config" && name != "help" {
			flags = append(flags, name)
		}
	}
	if len(flags) < 20 {
		t.Fatalf("found only %d flags in ringkv server --help:\n%s", len(flags), out)
	}
	return flags
}

// TestExampleConfigMatchesHelp holds deploy/ringkv.example.yaml to the
// server's flags: every flag --help lists is a key, no key is anything else,
// every key says why in a comment above it, and every value is the flag's
// default (node-id's default is the host name, so any value is accepted).
// The file must also load as a real configuration.
func TestExampleConfigMatchesHelp(t *testing.T) {
	path := filepath.Join(repoRoot, "deploy", "ringkv.example.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		t.Fatalf("%s: not a mapping", path)
	}
	flags := helpFlags(t, buildRingkv(t))
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		name := k.Value
		seen[name] = true
		if !slices.Contains(flags, name) {
			t.Errorf("%s:%d: %q is not a flag of ringkv server --help", path, k.Line, name)
			continue
		}
		if k.HeadComment == "" {
			t.Errorf("%s:%d: %q has no comment saying why", path, k.Line, name)
		}
		if name == "node-id" {
			continue
		}
		// The value goes through the flag's own parser, so "4h" and the
		// default's "4h0m0s" compare equal, as a node would read them.
		fs := pflag.NewFlagSet("example", pflag.ContinueOnError)
		c := config.Default()
		c.AddFlags(fs)
		f := fs.Lookup(name)
		val := v.Value
		if v.Kind == yaml.SequenceNode {
			var items []string
			for _, it := range v.Content {
				items = append(items, it.Value)
			}
			val = strings.Join(items, ",")
		}
		if err := fs.Set(name, val); err != nil {
			t.Errorf("%s:%d: %s: %q: %v", path, v.Line, name, val, err)
			continue
		}
		if got := f.Value.String(); got != f.DefValue {
			t.Errorf("%s:%d: %s is %q (%s), but its default in --help is %s", path, v.Line, name, v.Value, got, f.DefValue)
		}
	}
	for _, name := range flags {
		if !seen[name] {
			t.Errorf("%s: lacks %q, which ringkv server --help lists", path, name)
		}
	}

	fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
	c := config.Default()
	c.AddFlags(fs)
	if err := fs.Parse([]string{"--config", path}); err != nil {
		t.Fatal(err)
	}
	if err := c.Load(fs, func(string) (string, bool) { return "", false }); err != nil {
		t.Fatalf("the example does not load as a configuration: %v", err)
	}
}
