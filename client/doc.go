// Package client is the Go client of ringkv, a leaderless, Dynamo-style
// key-value store. It knows the cluster's topology and sends each request
// straight to a replica of its key, so the node that coordinates the request
// is also one of the nodes that store the key and no extra network hop is
// paid.
//
// # Overview
//
// Create one Client per process with New, giving it the HTTP addresses of a
// few nodes, and share it between goroutines:
//
//	c, err := client.New(ctx, client.Config{Seeds: []string{"10.0.0.1:8379", "10.0.0.2:8379"}})
//	if err != nil { … }
//	defer c.Close()
//	err = c.Set(ctx, "user:42", []byte("ada"), client.WithTTL(time.Hour))
//	v, err := c.Get(ctx, "user:42")
//
// The client fetches GET /v1/cluster from the first seed that answers and
// computes the consistent-hash ring from the member list exactly as the
// servers do. It refreshes the topology every Config.RefreshInterval, and at
// once when a node cannot be reached, so it follows nodes joining, leaving
// and failing. Requests are sent over RESP (the Redis protocol) to the
// node's client port, to the key's primary replica when it is up, otherwise
// to the next replica that is.
//
// Each node gets a pool of up to Config.PoolSize connections. A connection
// is pipelined: concurrent calls that share it are written together and their
// replies matched in order, so many goroutines cost few syscalls. MGet and
// MSet split their keys by replica and send one command per node, in
// parallel.
//
// # Consistency
//
// Every call runs at a consistency level: the Config's Consistency (Quorum
// by default) unless the call passes WithConsistency. With N replicas a
// level needs 1 (One), N/2+1 (Quorum) or N (All) replicas to answer a read or
// acknowledge a write. Quorum reads see every Quorum write acknowledged
// before they began when no write to the key runs concurrently; One is
// fastest and may read a stale replica. Conflicting writes are resolved by
// last-writer-wins on the coordinator's hybrid logical clock.
//
// Set with NX or XX, Expire, and the server's other read-modify-write
// commands are a read at the call's level followed by a write; they are not
// atomic with respect to other writers of the same key.
//
// # Errors
//
// Errors wrap sentinels to test with errors.Is:
//
//   - ErrNotFound: Get or TTL of a key that does not exist.
//   - ErrNotSet: a Set whose NX or XX condition failed; nothing was written.
//   - ErrUnavailable: nothing was applied. No replica could be reached, or
//     the coordinating node saw too few live replicas for the level and sent
//     nothing (the server's UNAVAILABLE reply). Safe to retry.
//   - ErrTimeout: the outcome is unknown. The request was sent but the
//     answer did not come back before the context's deadline, the
//     connection broke after sending, or the coordinating node heard too few
//     replicas before its own deadline (the server's TIMEOUT reply). A write
//     may or may not have been applied, on some replicas or all.
//   - ErrClosed: the Client was closed.
//
// Any other error reply from a node is a *ServerError (errors.As), which
// carries the node id, the reply's prefix (ERR, NOAUTH, …) and message; a
// ServerError with the UNAVAILABLE or TIMEOUT prefix also matches the
// sentinels above. A context that ends during a call gives an error that
// matches ctx.Err() as well.
//
// # Retries
//
// Reads (Get, TTL, MGet, Scan) are idempotent and are retried on the key's
// next replica when a node cannot be reached, answers ErrUnavailable or
// ErrTimeout, or breaks the connection, until the replicas are exhausted or
// the context ends.
//
// Writes (Set, Delete, Expire, MSet) are never sent twice. The one case in
// which a write moves to the next replica is when it provably never left the
// client: no connection to the first node could be opened. Every other
// failure is returned to the caller, who knows whether writing again is
// safe. An ErrTimeout from a write means "check before you retry".
//
// # Near cache
//
// Config.NearCache enables an opt-in, in-process cache of Get results for
// hot keys. A cached answer is never older than NearCache.TTL: it is what
// the cluster answered to a read that began at most TTL earlier. Writes made
// through this Client invalidate the key at once, so a goroutine that
// writes and then reads through the same Client never sees an answer older
// than its own write. Writes by other clients, TTL expiry and deletions
// elsewhere become visible only when the entry ages out, up to TTL later.
// NoCache bypasses the cache for one call.
package client
