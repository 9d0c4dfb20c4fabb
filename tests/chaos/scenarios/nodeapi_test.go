package scenarios

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringkv/ringkv/internal/httpapi"
	"github.com/ringkv/ringkv/internal/ring"
	"github.com/ringkv/ringkv/tests/chaos/checker"
	"github.com/ringkv/ringkv/tests/chaos/failpoint"
	"github.com/ringkv/ringkv/tests/chaos/traffic"
)

// What both clusters (Docker containers, in-process nodes) do the same way:
// speak RESP to a node's client port, read its HTTP admin API, and follow
// the membership: nodes are numbered 0.. and named n1, n2 ...; a
// decommissioned one keeps its number.

// nodeURL returns node i's URL for an HTTP API path.
type nodeURL func(i int, path string) string

// members returns the nodes not removed (decommissioned), ascending.
func members(removed []bool) []int {
	var m []int
	for i, gone := range removed {
		if !gone {
			m = append(m, i)
		}
	}
	return m
}

// redirect returns the node a request for node i goes to: i itself, or when
// i was decommissioned (removed[i]) the next member, as a client whose
// server left would reconnect elsewhere. A register's writer thus moves
// once, never back.
func redirect(removed []bool, i int) int {
	n := len(removed)
	for k := range n {
		if j := (i + k) % n; !removed[j] {
			return j
		}
	}
	return i
}

// memberView is one member as a node's /v1/cluster lists it.
type memberView struct {
	ID    string `json:"id"`
	Up    bool   `json:"up"`
	State string `json:"state"`
}

// checkSettled reports why the members' views (view(i) is member i's, by
// member id) are not yet the ring of the current members, all up and
// normal, with every other node removed or gone; nil when they are.
func checkSettled(members []int, view func(i int) (map[string]memberView, error)) error {
	want := map[string]bool{}
	for _, i := range members {
		want[fmt.Sprintf("n%d", i+1)] = true
	}
	for _, i := range members {
		v, err := view(i)
		if err != nil {
			return err
		}
		for id := range want {
			if m := v[id]; !m.Up || m.State != "normal" {
				return fmt.Errorf("n%d sees %s up=%v state=%q", i+1, id, m.Up, m.State)
			}
		}
		for id, m := range v {
			if !want[id] && m.State != "removed" {
				return fmt.Errorf("n%d still lists %s, not a member, as %q", i+1, id, m.State)
			}
		}
	}
	return nil
}

// replicaVersions reads key from the own replica of each of its replicas in
// the ring of members, computed the way every node computes it (vnodes
// tokens per node, rf replicas).
func replicaVersions(ctx context.Context, httpc *http.Client, url nodeURL, members []int, vnodes, rf int, key string) ([]string, error) {
	var nodes []ring.Node
	for _, i := range members {
		nodes = append(nodes, ring.Node{ID: fmt.Sprintf("n%d", i+1)})
	}
	reps := ring.New(nodes, vnodes, rf).Replicas([]byte(key))
	out := make([]string, len(reps))
	for k, rep := range reps {
		var i int
		if _, err := fmt.Sscanf(rep.ID, "n%d", &i); err != nil {
			return nil, err
		}
		v, err := localVersion(ctx, httpc, url(i-1, "/v1/kv/"+key+"?local=true"))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", rep.ID, err)
		}
		out[k] = v
	}
	return out, nil
}

// membersRoots reads every member's range roots, once each has rebuilt its
// bucket hashes.
func membersRoots(ctx context.Context, httpc *http.Client, url nodeURL, members []int) (map[string][]checker.RangeRoot, error) {
	out := map[string][]checker.RangeRoot{}
	for _, i := range members {
		roots, err := rangeRoots(ctx, httpc, url(i, "/v1/repair/status?roots=true"))
		if err != nil {
			return nil, fmt.Errorf("n%d: %w", i+1, err)
		}
		out[fmt.Sprintf("n%d", i+1)] = roots
	}
	return out, nil
}

// repairMembers starts an on-demand repair on every member (POST /v1/repair).
func repairMembers(ctx context.Context, httpc *http.Client, url nodeURL, members []int) error {
	var errs []error
	for _, i := range members {
		if err := postOK(ctx, httpc, url(i, "/v1/repair")); err != nil {
			errs = append(errs, fmt.Errorf("n%d: %w", i+1, err))
		}
	}
	return errors.Join(errs...)
}

// levelClients returns, per consistency level, a client of the RESP server
// at addr whose connections set that level (RINGKV.CONSISTENCY); t's end
// closes them.
func levelClients(t *testing.T, addr, password string) map[string]*redis.Client {
	t.Helper()
	out := map[string]*redis.Client{}
	for _, lvl := range []string{traffic.One, traffic.Quorum, traffic.All} {
		cl := redis.NewClient(&redis.Options{
			Addr: addr, Password: password, DialTimeout: time.Second, MaxRetries: -1,
			ReadTimeout: 3 * time.Second, WriteTimeout: 3 * time.Second, PoolSize: 8,
			OnConnect: func(ctx context.Context, cn *redis.Conn) error {
				return cn.Do(ctx, "RINGKV.CONSISTENCY", lvl).Err()
			},
		})
		t.Cleanup(func() { cl.Close() })
		out[lvl] = cl
	}
	return out
}

func respPut(ctx context.Context, cl *redis.Client, key, value string, ttl time.Duration) error {
	return cl.Set(ctx, key, value, ttl).Err()
}

func respGet(ctx context.Context, cl *redis.Client, key string) (string, bool, error) {
	v, err := cl.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	return v, err == nil, err
}

func respDel(ctx context.Context, cl *redis.Client, key string) error {
	return cl.Del(ctx, key).Err()
}

func respIncr(ctx context.Context, cl *redis.Client, key string, delta int64) error {
	return cl.IncrBy(ctx, key, delta).Err()
}

// classifyRESP reads the server's error prefixes: UNAVAILABLE was not
// attempted, nor was LOADING (a node restoring after a salvage), nor "ERR
// clock skew:" (a node whose clock is off refuses before sending), and "ERR
// disk full" was refused by every replica it reached; TIMEOUT, and any
// connection failure after the command may have been sent, may have been
// applied. A refused dial sent nothing.
func classifyRESP(err error) traffic.Outcome {
	var rerr redis.Error
	if errors.As(err, &rerr) {
		for _, p := range []string{"UNAVAILABLE", "LOADING", "ERR disk full", "ERR clock skew:"} {
			if strings.HasPrefix(rerr.Error(), p) {
				return traffic.Failed
			}
		}
	}
	var oerr *net.OpError
	if errors.As(err, &oerr) && oerr.Op == "dial" {
		return traffic.Failed
	}
	return traffic.Indeterminate
}

// localVersion reads a key's version from a node's own replica (url is its
// /v1/kv/{key}?local=true); "" when it holds none. A live value follows the
// version: two states of a counter can share one.
func localVersion(ctx context.Context, httpc *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
		return "", fmt.Errorf("local read: %s", resp.Status)
	}
	version := resp.Header.Get(httpapi.HeaderVersion)
	if exp := resp.Header.Get(httpapi.HeaderExpireAt); exp != "" {
		// A record at or near its expiry is named by its version and
		// expiry alone: whether a replica still calls it live depends on
		// the instant the check read it and on the replica's clock, not on
		// what it stores, and the check reads a key's replicas one after
		// another while the traffic's TTLs run out.
		if ms, err := strconv.ParseInt(exp, 10, 64); err == nil && time.UnixMilli(ms).Before(time.Now().Add(expiryMargin)) {
			return version + " expiring at " + exp, nil
		}
	}
	if resp.StatusCode == http.StatusOK {
		return version + " " + string(body), nil
	}
	return version, nil
}

// expiryMargin is how near its expiry a record's liveness may differ
// between replicas: the clock skew the failpoints allow either way, and
// time for the reads.
const expiryMargin = 2*failpoint.MaxSkew + 200*time.Millisecond

// getJSONURL decodes the answer to GET url into v.
func getJSONURL(ctx context.Context, httpc *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %s: %s", req.URL.Path, resp.Status, bytes.TrimSpace(body))
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %w", req.URL.Path, err)
	}
	return nil
}

// postURL sends POST url and wants status back.
func postURL(ctx context.Context, httpc *http.Client, url string, status int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return err
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		return fmt.Errorf("POST %s: %s: %s", req.URL.Path, resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

func postOK(ctx context.Context, httpc *http.Client, url string) error {
	return postURL(ctx, httpc, url, http.StatusOK)
}

// rangeRoots reads a node's range roots (url is its
// /v1/repair/status?roots=true), once it has rebuilt its bucket hashes.
func rangeRoots(ctx context.Context, httpc *http.Client, url string) ([]checker.RangeRoot, error) {
	var st struct {
		TreeReady bool                `json:"tree_ready"`
		Ranges    []checker.RangeRoot `json:"ranges"`
	}
	if err := getJSONURL(ctx, httpc, url, &st); err != nil {
		return nil, err
	}
	if !st.TreeReady {
		return nil, errors.New("bucket hashes not rebuilt yet")
	}
	return st.Ranges, nil
}
