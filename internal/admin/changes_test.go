package admin

import (
	"context"
	"errors"
	"net/http"
	"testing"
)

// fakeChanges answers as the coordinator does: a status, a refusal with a
// code, or a failure.
type fakeChanges struct {
	status string
	err    error
	id     string // the id RemoveNode was asked for
}

func (f *fakeChanges) Decommission(context.Context) (string, error) { return f.status, f.err }

func (f *fakeChanges) RemoveNode(_ context.Context, id string) (string, error) {
	f.id = id
	return f.status, f.err
}

type codedErr struct{ code, msg string }

func (e codedErr) Error() string       { return e.msg }
func (e codedErr) RefusalCode() string { return e.code }

// The bodies and statuses are the ones `ringkv decommission` and `ringkv
// removenode` read: 202 with the status once a change started, a refusal's
// code with 400, 404 or 409, anything else 500.
func TestChangeAnswers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ch     fakeChanges
		path   string
		status int
		body   string
	}{
		{"started", fakeChanges{status: "leaving"}, "/v1/admin/decommission", 202, `{"status":"leaving"}` + "\n"},
		{"busy", fakeChanges{err: codedErr{"BUSY", "another topology change is in progress"}}, "/v1/admin/decommission", 409,
			`{"error":"another topology change is in progress","code":"BUSY"}` + "\n"},
		{"failed", fakeChanges{err: errors.New("disk full")}, "/v1/admin/decommission", 500, `{"error":"disk full","code":"ERR"}` + "\n"},
		{"removing", fakeChanges{status: "removing"}, "/v1/admin/removenode?id=n3", 202, `{"status":"removing"}` + "\n"},
		{"no id", fakeChanges{err: codedErr{"BADREQUEST", "missing ?id="}}, "/v1/admin/removenode", 400, `{"error":"missing ?id=","code":"BADREQUEST"}` + "\n"},
		{"unknown", fakeChanges{err: codedErr{"NOTFOUND", `no member "z"`}}, "/v1/admin/removenode?id=z", 404, `{"error":"no member \"z\"","code":"NOTFOUND"}` + "\n"},
		{"up", fakeChanges{err: codedErr{"NODEUP", "n3 is up"}}, "/v1/admin/removenode?id=n3", 409, `{"error":"n3 is up","code":"NODEUP"}` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mux := http.NewServeMux()
			ch := tc.ch
			Mount(mux, Node{Changes: &ch})
			rec := do(mux, "POST", tc.path)
			if rec.Code != tc.status || rec.Body.String() != tc.body {
				t.Fatalf("%d %q, want %d %q", rec.Code, rec.Body.String(), tc.status, tc.body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
		})
	}
	ch := &fakeChanges{status: "removing"}
	mux := http.NewServeMux()
	Mount(mux, Node{Changes: ch})
	do(mux, "POST", "/v1/admin/removenode?id=n3")
	if ch.id != "n3" {
		t.Fatalf("RemoveNode asked for %q, want n3", ch.id)
	}
}
