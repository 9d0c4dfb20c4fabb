package client

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// goListDeps returns the import paths of pkg and everything it links, as the
// go command resolves them for this module.
func goListDeps(t *testing.T, format, pkg string) []string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list the client's dependencies: %v", err)
	}
	out, err := exec.Command(goBin, "list", "-deps", "-f", format, pkg).Output()
	if err != nil {
		msg := ""
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			msg = string(ee.Stderr)
		}
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, msg)
	}
	return strings.Fields(string(out))
}

// TestClientDoesNotLinkTheServer keeps the client walled off from the server:
// a program that talks to ringkv must not build the storage engines, the
// replication layer or gossip. It fails when an import brings one in, as
// Pebble's own lint test does for its forbidden imports.
func TestClientDoesNotLinkTheServer(t *testing.T) {
	forbidden := []string{
		"github.com/cockroachdb/pebble",
		"github.com/hashicorp/memberlist",
		"github.com/ringkv/ringkv/internal/httpapi",
		"github.com/ringkv/ringkv/internal/server",
		"github.com/ringkv/ringkv/internal/storage",
		"github.com/ringkv/ringkv/internal/replication",
	}
	deps := goListDeps(t, "{{.ImportPath}}", "github.com/ringkv/ringkv/client")
	if len(deps) == 0 {
		t.Fatal("go list -deps listed nothing for the client")
	}
	for _, d := range deps {
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, f+"/") {
				t.Errorf("the client links %s (forbidden: %s)", d, f)
			}
		}
	}
}

// TestAPITypesImportOnlyTheStandardLibrary keeps the shared wire types a leaf,
// so that importing them can never pull the server back into the client.
func TestAPITypesImportOnlyTheStandardLibrary(t *testing.T) {
	const pkg = "github.com/ringkv/ringkv/internal/apitypes"
	deps := goListDeps(t, "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg)
	if len(deps) != 1 || deps[0] != pkg {
		t.Errorf("%s imports more than the standard library: %v", pkg, deps)
	}
}
