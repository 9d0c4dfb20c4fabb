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
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringkv/ringkv/tests/chaos/checker"
	"github.com/ringkv/ringkv/tests/chaos/traffic"
)

// What both clusters (Docker containers, in-process nodes) do the same way:
// speak RESP to a node's client port and read its HTTP admin API.

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
	switch resp.StatusCode {
	case http.StatusOK:
		return resp.Header.Get("X-Ringkv-Version") + " " + string(body), nil
	case http.StatusNotFound:
		return resp.Header.Get("X-Ringkv-Version"), nil
	}
	return "", fmt.Errorf("local read: %s", resp.Status)
}

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
