package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/ringkv/ringkv/internal/apitypes"
	"github.com/ringkv/ringkv/internal/auth"
	"github.com/ringkv/ringkv/internal/httpapi"
)

// guardedNode serves /v1/cluster and /v1/repair behind the real HTTP guard
// with --password "pw", as a node does.
func guardedNode(t *testing.T) string {
	t.Helper()
	a, err := auth.New(auth.Config{Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	api := httpapi.New(httpapi.Config{Auth: a}, nil)
	api.Handle("GET /v1/cluster", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(cannedCluster))
	}))
	api.Handle("POST /v1/repair", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(apitypes.RepairStatus{Repair: &apitypes.RepairProgress{ID: 1, Done: true}})
	}))
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func TestCommandsSendCredentials(t *testing.T) {
	addr := guardedNode(t)
	te := newTestEnv(t)
	if code := te.run(t.Context(), "status", "--addr", addr); code == exitOK || !strings.Contains(te.stderr.String(), "401") {
		t.Fatalf("no credentials: exit %d, stderr %q; want a 401 error", code, te.stderr.String())
	}
	te = newTestEnv(t)
	if code := te.run(t.Context(), "status", "--addr", addr, "--password", "pw"); code != exitOK {
		t.Fatalf("--password: exit %d: %s", code, te.stderr.String())
	}
	te = newTestEnv(t)
	te.vars[envUser], te.vars[envPassword] = "default", "pw"
	if code := te.run(t.Context(), "status", "--addr", addr); code != exitOK {
		t.Fatalf("RINGKV_USER/RINGKV_PASSWORD: exit %d: %s", code, te.stderr.String())
	}
	te = newTestEnv(t)
	te.vars[envPassword] = "wrong"
	if code := te.run(t.Context(), "status", "--addr", addr, "--password", "pw"); code != exitOK {
		t.Fatalf("flag over env: exit %d: %s", code, te.stderr.String())
	}
	// A POST passes the node's cross-site check (JSON content type).
	te = newTestEnv(t)
	if code := te.run(t.Context(), "repair", "--addr", addr, "--password", "pw"); code != exitOK {
		t.Fatalf("repair: exit %d: %s", code, te.stderr.String())
	}
}

func TestHashPassword(t *testing.T) {
	te := newTestEnv(t)
	te.stdin.Reset("correct horse\n")
	if code := te.run(t.Context(), "hash-password"); code != exitOK {
		t.Fatalf("exit %d: %s", code, te.stderr.String())
	}
	h := strings.TrimSpace(te.stdout.String())
	if err := bcrypt.CompareHashAndPassword([]byte(h), []byte("correct horse")); err != nil {
		t.Fatalf("hash %q does not verify the password read: %v", h, err)
	}
	te = newTestEnv(t)
	if code := te.run(t.Context(), "hash-password"); code == exitOK {
		t.Fatal("an empty password was hashed")
	}
}
