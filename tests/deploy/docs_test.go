package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/ringkv/ringkv/internal/config"
)

// otherTools are flags the docs name that belong to other programs, each
// with the program: anything else spelled --flag in the docs must be one of
// ringkv's.
var otherTools = map[string]string{
	"always":           "git describe",
	"dirty":            "git describe",
	"tags":             "go test",
	"cacert":           "redis-cli, curl",
	"cert":             "redis-cli",
	"key":              "redis-cli",
	"tls":              "redis-cli",
	"pass":             "redis-cli",
	"data-binary":      "curl",
	"from-file":        "kubectl",
	"from-literal":     "kubectl",
	"ignore-missing":   "sha256sum",
	"bootstrap-expect": "Consul, named as the design ringkv did not take",
}

// commandFlags runs `ringkv <path> --help` for every command and
// subcommand the binary lists and returns each one's flags, keyed by the
// command path ("server", "cert node"). The server's hidden flags come from
// the config package, which defines them.
func commandFlags(t *testing.T, bin string) map[string]map[string]bool {
	t.Helper()
	out := map[string]map[string]bool{}
	flagRE := regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z0-9-]+)`)
	var walk func(path []string)
	walk = func(path []string) {
		help, err := exec.Command(bin, append(path, "--help")...).CombinedOutput()
		if err != nil {
			t.Fatalf("ringkv %s --help: %v\n%s", strings.Join(path, " "), err, help)
		}
		flags := map[string]bool{}
		for _, m := range flagRE.FindAllSubmatch(help, -1) {
			flags[string(m[1])] = true
		}
		out[strings.Join(path, " ")] = flags
		_, cmds, ok := strings.Cut(string(help), "Available Commands:\n")
		if !ok {
			return
		}
		cmds, _, _ = strings.Cut(cmds, "\n\n")
		for _, line := range strings.Split(cmds, "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[0] != "help" && f[0] != "completion" {
				walk(append(append([]string(nil), path...), f[0]))
			}
		}
	}
	walk(nil)
	if len(out["server"]) < 20 || len(out["cert node"]) == 0 {
		t.Fatalf("found too few commands or flags in ringkv --help: %v", out)
	}
	fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
	c := config.Default()
	c.AddFlags(fs)
	fs.VisitAll(func(f *pflag.Flag) { out["server"][f.Name] = true })
	return out
}

// codeOf returns the code in a Markdown page: its fenced blocks, with shell
// comments and line continuations removed, then its inline code spans.
func codeOf(page string) []string {
	var code []string
	fence := regexp.MustCompile("(?s)```[a-z]*\n(.*?)```")
	for _, m := range fence.FindAllStringSubmatch(page, -1) {
		block := strings.ReplaceAll(m[1], "\\\n", " ")
		for _, line := range strings.Split(block, "\n") {
			if i := strings.Index(line, " #"); i >= 0 {
				line = line[:i]
			}
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			code = append(code, line)
		}
	}
	rest := fence.ReplaceAllString(page, "")
	// An inline span may wrap onto the next line.
	for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(rest, -1) {
		code = append(code, strings.ReplaceAll(m[1], "\n", " "))
	}
	return code
}

// TestDocsNameRealCommandsAndFlags holds README.md and docs/ to the binary:
// each `ringkv <command>` their code runs is a command of ringkv, with
// only that command's flags, and every --flag they name anywhere is a flag
// of some ringkv command or of a program otherTools names.
func TestDocsNameRealCommandsAndFlags(t *testing.T) {
	cmds := commandFlags(t, buildRingkv(t))
	anyFlag := map[string]bool{}
	for _, flags := range cmds {
		for f := range flags {
			anyFlag[f] = true
		}
	}
	pages, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	pages = append(pages, filepath.Join(repoRoot, "README.md"))

	invocation := regexp.MustCompile(`(?:^|[\s($&|;])ringkv ((?:[a-z][a-z-]*)(?: [a-z][a-z-]*)?)([^|;&)]*)`)
	flagRE := regexp.MustCompile(`(?:^|[^a-z0-9-])--([a-z0-9][a-z0-9-]*)`)
	checked := 0
	for _, page := range pages {
		data, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(page)
		for _, code := range codeOf(string(data)) {
			for _, m := range invocation.FindAllStringSubmatch(code, -1) {
				words := strings.Fields(m[1])
				path := words[0]
				if len(words) == 2 && cmds[path+" "+words[1]] != nil {
					path += " " + words[1]
				}
				flags, ok := cmds[path]
				if !ok {
					t.Errorf("%s: `%s` runs ringkv %s, which is not a command of ringkv", name, strings.TrimSpace(code), words[0])
					continue
				}
				checked++
				for _, f := range flagRE.FindAllStringSubmatch(m[2], -1) {
					if !flags[f[1]] {
						t.Errorf("%s: `%s` passes --%s, which ringkv %s does not take", name, strings.TrimSpace(code), f[1], path)
					}
				}
			}
		}
		for _, f := range flagRE.FindAllStringSubmatch(string(data), -1) {
			flag := f[1]
			if strings.HasSuffix(flag, "-") { // a family, such as --tls-*
				found := false
				for g := range anyFlag {
					found = found || strings.HasPrefix(g, flag)
				}
				if !found {
					t.Errorf("%s: names --%s*, but no ringkv flag starts so", name, flag)
				}
				continue
			}
			if !anyFlag[flag] && otherTools[flag] == "" {
				t.Errorf("%s: names --%s, which is no flag of ringkv (nor of a tool in otherTools)", name, flag)
			}
		}
	}
	if checked < 20 {
		t.Fatalf("found only %d ringkv invocations in the docs' code", checked)
	}
}
