package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/apitypes"
	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/replication"
)

// memBackend is an in-memory Backend: one replica, versions from a counter.
type memBackend struct {
	clock *clock.Manual

	mu struct {
		sync.Mutex
		recs      map[string]record.Record
		seq       uint64
		err       error // returned by every call when set
		lastLevel replication.Level
		localHits int
	}
}

var _ Backend = (*memBackend)(nil)

func newMemBackend() *memBackend {
	b := &memBackend{clock: clock.NewManual(time.UnixMilli(1_700_000_000_000))}
	b.mu.recs = map[string]record.Record{}
	return b
}

func (b *memBackend) Now() time.Time { return b.clock.Now() }

func (b *memBackend) Get(_ context.Context, key []byte, lvl replication.Level) (record.Record, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mu.lastLevel = lvl
	if b.mu.err != nil {
		return record.Record{}, false, b.mu.err
	}
	r, ok := b.mu.recs[string(key)]
	return r, ok, nil
}

func (b *memBackend) GetLocal(key []byte) (record.Record, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mu.localHits++
	if b.mu.err != nil {
		return record.Record{}, false, b.mu.err
	}
	r, ok := b.mu.recs[string(key)]
	return r, ok, nil
}

func (b *memBackend) Put(_ context.Context, key []byte, m replication.Mutation, lvl replication.Level) (record.Record, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mu.lastLevel = lvl
	if b.mu.err != nil {
		return record.Record{}, false, b.mu.err
	}
	prev, ok := b.mu.recs[string(key)]
	b.mu.seq++
	b.mu.recs[string(key)] = record.Record{
		Value:     bytes.Clone(m.Value),
		Version:   record.Version{TS: clock.MakeTimestamp(b.clock.Now().UnixMilli(), uint16(b.mu.seq)), Node: "n1"},
		ExpireAt:  m.ExpireAt,
		Tombstone: m.Tombstone,
	}
	return prev, ok, nil
}

func (b *memBackend) setErr(err error) {
	b.mu.Lock()
	b.mu.err = err
	b.mu.Unlock()
}

func (b *memBackend) record(key string) (record.Record, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok := b.mu.recs[key]
	return r, ok
}

func (b *memBackend) lastLevel() replication.Level {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mu.lastLevel
}

type testAPI struct {
	*API
	backend *memBackend
	url     string
}

func newTestAPI(tb testing.TB, cfg Config) *testAPI {
	tb.Helper()
	b := newMemBackend()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(tbWriter{tb}, nil))
	}
	a := New(cfg, b)
	srv := httptest.NewServer(a.Handler())
	tb.Cleanup(srv.Close)
	return &testAPI{API: a, backend: b, url: srv.URL}
}

// tbWriter sends logs to the test's log.
type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (a *testAPI) do(tb testing.TB, method, path string, body io.Reader) response {
	tb.Helper()
	req, err := http.NewRequestWithContext(tb.Context(), method, a.url+path, body)
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

func (r response) errorBody(tb testing.TB) apitypes.ErrorBody {
	tb.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		tb.Fatalf("error Content-Type = %q, want application/json (body %q)", ct, r.body)
	}
	var e apitypes.ErrorBody
	if err := json.Unmarshal(r.body, &e); err != nil {
		tb.Fatalf("error body %q: %v", r.body, err)
	}
	if e.Error == "" {
		tb.Fatalf("error body %q has no message", r.body)
	}
	return e
}

func expectStatus(tb testing.TB, r response, status int, code string) {
	tb.Helper()
	if r.status != status {
		tb.Fatalf("status = %d, want %d (body %q)", r.status, status, r.body)
	}
	if code != "" {
		if got := r.errorBody(tb).Code; got != code {
			tb.Fatalf("code = %q, want %q (body %q)", got, code, r.body)
		}
	}
}

func TestPutGetDelete(t *testing.T) {
	a := newTestAPI(t, Config{})

	expectStatus(t, a.do(t, "PUT", "/v1/kv/greeting", strings.NewReader("hello")), http.StatusNoContent, "")
	r := a.do(t, "GET", "/v1/kv/greeting", nil)
	expectStatus(t, r, http.StatusOK, "")
	if string(r.body) != "hello" {
		t.Fatalf("body = %q, want hello", r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/octet-stream" {
		t.Fatalf("Content-Type = %q", ct)
	}
	rec, _ := a.backend.record("greeting")
	if got := r.header.Get(HeaderVersion); got != rec.Version.String() {
		t.Fatalf("%s = %q, want %q", HeaderVersion, got, rec.Version.String())
	}
	if got := r.header.Get(HeaderExpireAt); got != "" {
		t.Fatalf("%s = %q on a key without expiry", HeaderExpireAt, got)
	}

	// Overwrite with an empty value: empty is a value, not a delete.
	expectStatus(t, a.do(t, "PUT", "/v1/kv/greeting", nil), http.StatusNoContent, "")
	r = a.do(t, "GET", "/v1/kv/greeting", nil)
	expectStatus(t, r, http.StatusOK, "")
	if len(r.body) != 0 {
		t.Fatalf("body = %q, want empty", r.body)
	}

	r = a.do(t, "DELETE", "/v1/kv/greeting", nil)
	expectStatus(t, r, http.StatusOK, "")
	if strings.TrimSpace(string(r.body)) != `{"deleted":true}` {
		t.Fatalf("delete body = %q", r.body)
	}
	if rec, _ := a.backend.record("greeting"); !rec.Tombstone {
		t.Fatalf("DELETE wrote %+v, want a tombstone", rec)
	}
	r = a.do(t, "GET", "/v1/kv/greeting", nil)
	expectStatus(t, r, http.StatusNotFound, apitypes.CodeNotFound)
	if r.header.Get(HeaderTombstone) != "true" {
		t.Fatalf("404 after delete lacks %s: %v", HeaderTombstone, r.header)
	}

	r = a.do(t, "DELETE", "/v1/kv/greeting", nil)
	if strings.TrimSpace(string(r.body)) != `{"deleted":false}` {
		t.Fatalf("second delete body = %q", r.body)
	}
	r = a.do(t, "GET", "/v1/kv/never-written", nil)
	expectStatus(t, r, http.StatusNotFound, apitypes.CodeNotFound)
	if r.header.Get(HeaderTombstone) != "" || r.header.Get(HeaderVersion) != "" {
		t.Fatalf("404 of a missing key has record headers: %v", r.header)
	}
}

func TestKeyEscaping(t *testing.T) {
	a := newTestAPI(t, Config{})
	for _, tc := range []struct{ path, key string }{
		{"a/b", "a/b"},
		{"a%2F%2Fb", "a//b"},
		{"%2E%2E", ".."},
		{"%00%FF", "\x00\xff"},
		{"sp%20ace", "sp ace"},
	} {
		expectStatus(t, a.do(t, "PUT", "/v1/kv/"+tc.path, strings.NewReader(tc.key)), http.StatusNoContent, "")
		if rec, ok := a.backend.record(tc.key); !ok || string(rec.Value) != tc.key {
			t.Fatalf("PUT /v1/kv/%s stored %v %+v under %q", tc.path, ok, rec, tc.key)
		}
		if r := a.do(t, "GET", "/v1/kv/"+tc.path, nil); r.status != http.StatusOK || string(r.body) != tc.key {
			t.Fatalf("GET /v1/kv/%s = %d %q", tc.path, r.status, r.body)
		}
	}
}

func TestGetJSON(t *testing.T) {
	a := newTestAPI(t, Config{})
	a.do(t, "PUT", "/v1/kv/text?ttl=60", strings.NewReader("héllo"))
	a.do(t, "PUT", "/v1/kv/bin%FF", bytes.NewReader([]byte{0, 0xff, 0xfe}))
	a.do(t, "PUT", "/v1/kv/empty", nil)

	get := func(path string) (Item, map[string]any) {
		t.Helper()
		r := a.do(t, "GET", path+"?format=json", nil)
		expectStatus(t, r, http.StatusOK, "")
		var it Item
		var raw map[string]any
		if err := json.Unmarshal(r.body, &it); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(r.body, &raw); err != nil {
			t.Fatal(err)
		}
		return it, raw
	}

	it, raw := get("/v1/kv/text")
	rec, _ := a.backend.record("text")
	if it.Key != "text" || it.Value == nil || *it.Value != "héllo" || it.Version != rec.Version.String() || it.ExpireAt != rec.ExpireAt || it.ExpireAt == 0 {
		t.Fatalf("text item = %+v, record %+v", it, rec)
	}
	if _, ok := raw["value_base64"]; ok {
		t.Fatalf("UTF-8 value also sent as base64: %v", raw)
	}

	it, raw = get("/v1/kv/bin%FF")
	if it.Value != nil || !bytes.Equal(it.ValueBase64, []byte{0, 0xff, 0xfe}) || !bytes.Equal(it.KeyBase64, []byte("bin\xff")) || it.Key != "" {
		t.Fatalf("binary item = %+v (%v)", it, raw)
	}

	it, raw = get("/v1/kv/empty")
	if v, ok := raw["value"]; !ok || v != "" {
		t.Fatalf("empty value not sent as \"value\": \"\": %v", raw)
	}
	if it.ExpireAt != 0 {
		t.Fatalf("expire_at = %d for a key without expiry", it.ExpireAt)
	}

	expectStatus(t, a.do(t, "GET", "/v1/kv/text?format=xml", nil), http.StatusBadRequest, apitypes.CodeBadRequest)
}

func TestTTL(t *testing.T) {
	a := newTestAPI(t, Config{})
	now := a.backend.Now().UnixMilli()
	for _, tc := range []struct {
		ttl  string
		want int64 // ms after now
	}{
		{"10s", 10_000},
		{"5", 5_000},
		{"1h30m", 90 * 60_000},
		{"1500us", 2}, // rounded up, never down to "already expired"
		{"1ns", 1},
	} {
		expectStatus(t, a.do(t, "PUT", "/v1/kv/k?ttl="+tc.ttl, strings.NewReader("v")), http.StatusNoContent, "")
		rec, _ := a.backend.record("k")
		if rec.ExpireAt != now+tc.want {
			t.Errorf("ttl=%s: expire_at = now%+d, want now%+d", tc.ttl, rec.ExpireAt-now, tc.want)
		}
	}

	for _, ttl := range []string{"0", "-1", "0s", "-5s", "abc", "", "10x", "1.5", "99999999999999999999", "9223372036854775807"} {
		r := a.do(t, "PUT", "/v1/kv/bad?ttl="+ttl, strings.NewReader("v"))
		expectStatus(t, r, http.StatusBadRequest, apitypes.CodeBadRequest)
		if _, ok := a.backend.record("bad"); ok {
			t.Fatalf("ttl=%q: refused write was applied", ttl)
		}
	}

	expectStatus(t, a.do(t, "PUT", "/v1/kv/k?ttl=10s", strings.NewReader("v")), http.StatusNoContent, "")
	r := a.do(t, "GET", "/v1/kv/k", nil)
	expectStatus(t, r, http.StatusOK, "")
	if got := r.header.Get(HeaderExpireAt); got != strconv.FormatInt(now+10_000, 10) {
		t.Fatalf("%s = %q, want %d", HeaderExpireAt, got, now+10_000)
	}

	// An expired key reads as absent at once, before any purge.
	a.backend.clock.Advance(10 * time.Second)
	r = a.do(t, "GET", "/v1/kv/k", nil)
	expectStatus(t, r, http.StatusNotFound, apitypes.CodeNotFound)
	if r.header.Get(HeaderExpired) != "true" {
		t.Fatalf("404 of an expired key lacks %s: %v", HeaderExpired, r.header)
	}
	r = a.do(t, "DELETE", "/v1/kv/k", nil)
	if strings.TrimSpace(string(r.body)) != `{"deleted":false}` {
		t.Fatalf("deleting an expired key = %q, want deleted false", r.body)
	}
}

func TestConsistency(t *testing.T) {
	a := newTestAPI(t, Config{DefaultLevel: replication.One})
	for _, tc := range []struct {
		method, query string
		want          replication.Level
	}{
		{"PUT", "", replication.One},
		{"PUT", "?consistency=ALL", replication.All},
		{"GET", "?consistency=quorum", replication.Quorum},
		{"GET", "", replication.One},
		{"DELETE", "?consistency=ALL", replication.All},
	} {
		a.do(t, tc.method, "/v1/kv/k"+tc.query, strings.NewReader("v"))
		if got := a.backend.lastLevel(); got != tc.want {
			t.Errorf("%s %s: level %v, want %v", tc.method, tc.query, got, tc.want)
		}
	}
	for _, method := range []string{"GET", "PUT", "DELETE"} {
		expectStatus(t, a.do(t, method, "/v1/kv/k?consistency=TWO", nil), http.StatusBadRequest, apitypes.CodeBadRequest)
	}
	if New(Config{}, newMemBackend()).cfg.DefaultLevel != replication.Quorum {
		t.Fatal("zero DefaultLevel is not QUORUM")
	}
}

// noLength hides a body's length so the request is sent chunked.
type noLength struct{ io.Reader }

func TestLimits(t *testing.T) {
	a := newTestAPI(t, Config{MaxKeyBytes: 8, MaxValueBytes: 16})

	expectStatus(t, a.do(t, "PUT", "/v1/kv/12345678", strings.NewReader("v")), http.StatusNoContent, "")
	expectStatus(t, a.do(t, "PUT", "/v1/kv/123456789", strings.NewReader("v")), http.StatusRequestEntityTooLarge, apitypes.CodeTooLarge)
	expectStatus(t, a.do(t, "GET", "/v1/kv/123456789", nil), http.StatusRequestEntityTooLarge, apitypes.CodeTooLarge)
	expectStatus(t, a.do(t, "PUT", "/v1/kv/", strings.NewReader("v")), http.StatusBadRequest, apitypes.CodeBadRequest)
	expectStatus(t, a.do(t, "GET", "/v1/kv/", nil), http.StatusBadRequest, apitypes.CodeBadRequest)

	atLimit := strings.Repeat("x", 16)
	expectStatus(t, a.do(t, "PUT", "/v1/kv/v", noLength{strings.NewReader(atLimit)}), http.StatusNoContent, "")
	for name, body := range map[string]io.Reader{
		"content-length": strings.NewReader(atLimit + "x"),
		"chunked":        noLength{strings.NewReader(atLimit + "x")},
	} {
		expectStatus(t, a.do(t, "PUT", "/v1/kv/v", body), http.StatusRequestEntityTooLarge, apitypes.CodeTooLarge)
		if rec, _ := a.backend.record("v"); string(rec.Value) != atLimit {
			t.Fatalf("%s: oversized value changed the key to %q", name, rec.Value)
		}
	}
}

func TestErrorMapping(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{replication.ErrUnavailable, http.StatusServiceUnavailable, apitypes.CodeUnavailable},
		{fmt.Errorf("key k: %w", replication.ErrTimeout), http.StatusGatewayTimeout, apitypes.CodeTimeout},
		{context.DeadlineExceeded, http.StatusGatewayTimeout, apitypes.CodeTimeout},
		{errors.New("disk on fire"), http.StatusInternalServerError, apitypes.CodeInternal},
	} {
		t.Run(tc.code, func(t *testing.T) {
			a := newTestAPI(t, Config{})
			a.backend.setErr(tc.err)
			for _, method := range []string{"GET", "PUT", "DELETE"} {
				r := a.do(t, method, "/v1/kv/k", strings.NewReader("v"))
				expectStatus(t, r, tc.status, tc.code)
				if !strings.Contains(r.errorBody(t).Error, tc.err.Error()) {
					t.Fatalf("%s: message %q does not carry %q", method, r.errorBody(t).Error, tc.err)
				}
			}
		})
	}
}

func TestLocalRead(t *testing.T) {
	a := newTestAPI(t, Config{})
	a.do(t, "PUT", "/v1/kv/k", strings.NewReader("v"))
	r := a.do(t, "GET", "/v1/kv/k?local=true", nil)
	expectStatus(t, r, http.StatusOK, "")
	if string(r.body) != "v" {
		t.Fatalf("local body = %q", r.body)
	}
	a.do(t, "DELETE", "/v1/kv/k", nil)
	r = a.do(t, "GET", "/v1/kv/k?local=1", nil)
	expectStatus(t, r, http.StatusNotFound, apitypes.CodeNotFound)
	rec, _ := a.backend.record("k")
	if r.header.Get(HeaderTombstone) != "true" || r.header.Get(HeaderVersion) != rec.Version.String() {
		t.Fatalf("local read of a tombstone: headers %v, want tombstone and version %s", r.header, rec.Version)
	}
	a.backend.mu.Lock()
	hits := a.backend.mu.localHits
	a.backend.mu.Unlock()
	if hits != 2 {
		t.Fatalf("GetLocal called %d times, want 2", hits)
	}
	expectStatus(t, a.do(t, "GET", "/v1/kv/k?local=maybe", nil), http.StatusBadRequest, apitypes.CodeBadRequest)
}

func TestProbes(t *testing.T) {
	var mu sync.Mutex
	readyErr := errors.New("storage opening")
	a := newTestAPI(t, Config{Ready: func() error {
		mu.Lock()
		defer mu.Unlock()
		return readyErr
	}})

	r := a.do(t, "GET", "/livez", nil)
	if r.status != http.StatusOK || strings.TrimSpace(string(r.body)) != "ok" {
		t.Fatalf("livez = %d %q", r.status, r.body)
	}
	r = a.do(t, "GET", "/readyz", nil)
	expectStatus(t, r, http.StatusServiceUnavailable, apitypes.CodeUnavailable)
	if !strings.Contains(r.errorBody(t).Error, "storage opening") {
		t.Fatalf("readyz does not give the reason: %q", r.body)
	}

	mu.Lock()
	readyErr = nil
	mu.Unlock()
	if r := a.do(t, "GET", "/readyz", nil); r.status != http.StatusOK {
		t.Fatalf("readyz when ready = %d %q", r.status, r.body)
	}
}

func TestHandleMountsRoutes(t *testing.T) {
	b := newMemBackend()
	a := New(Config{}, b)
	a.Handle("GET /v1/cluster", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"nodes":[]}`)
	}))
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/v1/cluster", nil))
	if rec.Code != http.StatusOK || rec.Body.String() != `{"nodes":[]}` {
		t.Fatalf("mounted route = %d %q", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest("POST", "/v1/kv/k", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST /v1/kv/k = %d, want 405", rec.Code)
	}
}

func TestErrorTableCoversEveryCode(t *testing.T) {
	for _, e := range errorTable {
		status, code := classify(fmt.Errorf("wrapped: %w", e.err))
		if status != e.status || code != e.code {
			t.Errorf("classify(%v) = %d %s, want %d %s", e.err, status, code, e.status, e.code)
		}
	}
}

func BenchmarkGet(b *testing.B) {
	a := New(Config{}, newMemBackend())
	h := a.Handler()
	put := httptest.NewRequest("PUT", "/v1/kv/bench", strings.NewReader(strings.Repeat("v", 128)))
	h.ServeHTTP(httptest.NewRecorder(), put)
	req := httptest.NewRequest("GET", "/v1/kv/bench", nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Code)
		}
	}
}
