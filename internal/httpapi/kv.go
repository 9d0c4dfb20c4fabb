package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/replication"
)

// Response headers.
const (
	// HeaderVersion is the record's version, "<physical ms>.<logical>@<node>".
	HeaderVersion = "X-Ringkv-Version"
	// HeaderExpireAt is the record's expiry in unix ms, absent when it has none.
	HeaderExpireAt = "X-Ringkv-Expire-At"
	// HeaderTombstone is "true" on a 404 whose key was deleted: the replicas
	// hold a tombstone, which operators tell apart from a key never written.
	HeaderTombstone = "X-Ringkv-Tombstone"
	// HeaderExpired is "true" on a 404 whose key expired but is not purged yet.
	HeaderExpired = "X-Ringkv-Expired"
)

// Item is the body of GET /v1/kv/{key}?format=json. JSON strings must be
// UTF-8, so each of key and value appears once: as "key"/"value" when it is
// valid UTF-8, otherwise base64-encoded (standard alphabet, padded) as
// "key_base64"/"value_base64". A client checks which one is present.
type Item struct {
	Key         string  `json:"key,omitempty"`
	KeyBase64   []byte  `json:"key_base64,omitempty"`
	Value       *string `json:"value,omitempty"`
	ValueBase64 []byte  `json:"value_base64,omitempty"`
	Version     string  `json:"version"`
	// ExpireAt is the expiry in unix ms; 0 means the key never expires.
	ExpireAt int64 `json:"expire_at"`
}

// DeleteResult is the body of DELETE /v1/kv/{key}.
type DeleteResult struct {
	// Deleted reports whether a live value was replaced by the delete.
	Deleted bool `json:"deleted"`
}

// maxTTLSeconds keeps now+ttl inside int64 milliseconds and time.Duration.
const maxTTLSeconds = math.MaxInt64 / int64(time.Second)

func (a *API) handleGet(w http.ResponseWriter, r *http.Request) {
	key, q, err := a.parseRequest(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	asJSON := false
	switch f := q.Get("format"); f {
	case "", "raw":
	case "json":
		asJSON = true
	default:
		a.writeError(w, r, fmt.Errorf("%w: format %q, want raw or json", errBadRequest, f))
		return
	}
	local := false
	if s := q.Get("local"); s != "" {
		if local, err = strconv.ParseBool(s); err != nil {
			a.writeError(w, r, fmt.Errorf("%w: local %q, want true or false", errBadRequest, s))
			return
		}
	}
	lvl, err := a.level(q)
	if err != nil {
		a.writeError(w, r, err)
		return
	}

	var (
		rec   record.Record
		found bool
	)
	if local {
		rec, found, err = a.backend.GetLocal(key)
	} else {
		rec, found, err = a.backend.Get(r.Context(), key, lvl)
	}
	if err != nil {
		a.writeError(w, r, err)
		return
	}

	h := w.Header()
	if found {
		h.Set(HeaderVersion, rec.Version.String())
		if rec.ExpireAt != 0 {
			h.Set(HeaderExpireAt, strconv.FormatInt(rec.ExpireAt, 10))
		}
	}
	if !found || !rec.Live(a.backend.Now().UnixMilli()) {
		// Say why the key is absent: operators chasing a "lost" write need to
		// know whether a delete or an expiry won.
		why := "key does not exist"
		switch {
		case !found:
		case rec.Tombstone:
			h.Set(HeaderTombstone, "true")
			why = "key was deleted"
		default:
			h.Set(HeaderExpired, "true")
			why = "key expired"
		}
		a.writeError(w, r, fmt.Errorf("%w: %s", errNotFound, why))
		return
	}

	if asJSON {
		it := Item{Version: rec.Version.String(), ExpireAt: rec.ExpireAt}
		if utf8.Valid(key) {
			it.Key = string(key)
		} else {
			it.KeyBase64 = key
		}
		if utf8.Valid(rec.Value) {
			v := string(rec.Value)
			it.Value = &v
		} else {
			it.ValueBase64 = rec.Value
		}
		writeJSON(w, http.StatusOK, it)
		return
	}
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.Itoa(len(rec.Value)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(rec.Value)
}

func (a *API) handlePut(w http.ResponseWriter, r *http.Request) {
	key, q, err := a.parseRequest(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	lvl, err := a.level(q)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	var ttl time.Duration
	if s, ok := q["ttl"]; ok {
		if ttl, err = parseTTL(s[0]); err != nil {
			a.writeError(w, r, err)
			return
		}
	}
	value, err := a.readValue(w, r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	m := replication.Mutation{Value: value}
	if ttl > 0 {
		m.ExpireAt = expireAt(a.backend.Now(), ttl)
	}
	if _, _, err := a.backend.Put(r.Context(), key, m, lvl); err != nil {
		a.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) handleDelete(w http.ResponseWriter, r *http.Request) {
	key, q, err := a.parseRequest(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	lvl, err := a.level(q)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	prev, found, err := a.backend.Put(r.Context(), key, replication.Mutation{Tombstone: true}, lvl)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, DeleteResult{Deleted: found && prev.Live(a.backend.Now().UnixMilli())})
}

// parseRequest returns the request's key and query, checked against the limits.
func (a *API) parseRequest(r *http.Request) ([]byte, url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: query: %w", errBadRequest, err)
	}
	key := r.PathValue("key")
	switch {
	case key == "":
		return nil, nil, fmt.Errorf("%w: empty key", errBadRequest)
	case len(key) > a.cfg.MaxKeyBytes:
		return nil, nil, fmt.Errorf("%w: key is %d bytes, the limit is %d", errTooLarge, len(key), a.cfg.MaxKeyBytes)
	}
	return []byte(key), q, nil
}

// level returns the request's ?consistency=, or the default.
func (a *API) level(q url.Values) (replication.Level, error) {
	s := q.Get("consistency")
	if s == "" {
		return a.cfg.DefaultLevel, nil
	}
	lvl, err := replication.ParseLevel(s)
	if err != nil {
		return 0, fmt.Errorf("%w: consistency: %w", errBadRequest, err)
	}
	return lvl, nil
}

// initialBody is the most readValue sets aside before a body arrives.
const initialBody = 64 << 10

// readValue reads the body, refusing it whole (never truncating) past the limit.
func (a *API) readValue(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	limit := int64(a.cfg.MaxValueBytes)
	tooLarge := fmt.Errorf("%w: value is larger than the limit of %d bytes", errTooLarge, limit)
	if r.ContentLength > limit {
		return nil, tooLarge
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	// Grown as the bytes arrive, never to the declared length up front: a
	// client that declares 16 MiB and sends two bytes must not cost 16 MiB.
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(min(r.ContentLength, initialBody)))
	}
	if _, err := buf.ReadFrom(body); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, tooLarge
		}
		return nil, fmt.Errorf("%w: reading value: %w", errBadRequest, err)
	}
	return buf.Bytes(), nil
}

// parseTTL accepts a Go duration ("10s", "1h30m") or a whole number of seconds.
func parseTTL(s string) (time.Duration, error) {
	bad := func(why string) error {
		return fmt.Errorf("%w: ttl %q: %s", errBadRequest, s, why)
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n <= 0 {
			return 0, bad("must be positive")
		}
		if n > maxTTLSeconds {
			return 0, bad("too large")
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, bad("want a duration such as 10s or 1h, or whole seconds")
	}
	if d <= 0 {
		return 0, bad("must be positive")
	}
	return d, nil
}

// expireAt rounds up to the next millisecond so that a positive ttl never
// yields a key that is already expired.
func expireAt(now time.Time, ttl time.Duration) int64 {
	ms := int64((ttl + time.Millisecond - 1) / time.Millisecond)
	return now.UnixMilli() + ms
}
