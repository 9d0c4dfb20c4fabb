package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Client. Only Seeds is required; every zero field takes
// the default documented on it.
type Config struct {
	// Seeds are HTTP addresses ("host:port" or "http://host:port") of some
	// of the cluster's nodes. The client asks them for the topology at start;
	// later refreshes also ask every node the topology lists.
	Seeds []string
	// Username and Password authenticate each connection (AUTH) and the
	// topology requests (HTTP Basic). Leave both empty when the cluster has
	// no password; Username empty is the "default" user of --password.
	Username, Password string
	// Consistency is the level of calls that do not choose one with
	// WithConsistency. Default Quorum, the servers' default.
	Consistency Level
	// PoolSize is the most connections the client opens to one node. Default
	// DefaultPoolSize. A node runs one connection's commands in order, so
	// concurrent callers need several connections to be served in parallel;
	// beyond PoolSize they pipeline on the least loaded one.
	PoolSize int
	// MaxPipeline is the most requests outstanding on one connection before
	// senders wait. Default 256.
	MaxPipeline int
	// DialTimeout bounds opening a connection. Default 2 s.
	DialTimeout time.Duration
	// ReadTimeout is how long a connection waits for its oldest reply before
	// it is declared dead and its requests fail with ErrTimeout. It guards
	// against nodes that hang without closing connections; a call's context
	// deadline usually ends the wait sooner. Default 10 s, well above the
	// servers' request timeout (2 s), which makes them always answer first.
	ReadTimeout time.Duration
	// RefreshInterval is how often the topology is refreshed. Errors that
	// suggest a stale topology refresh it sooner. Default 5 s.
	RefreshInterval time.Duration
	// DownBackoff is how long a node that refused a connection is tried only
	// after the key's other replicas. Default 1 s.
	DownBackoff time.Duration
	// NearCache, when its Size is above zero, caches Get results in the
	// client. See NearCache.
	NearCache NearCache
	// TLSConfig, when set, makes every connection to a node's client port
	// TLS (ringkv's --tls-cert), and the seeds and the nodes' HTTP
	// addresses are asked over HTTPS when they name no scheme. RootCAs
	// verifies the nodes; Certificates holds a client certificate for nodes
	// run with --tls-require-client-cert. The server name checked is the
	// host of the address dialled unless ServerName is set.
	TLSConfig *tls.Config
	// HTTPClient fetches the topology. Default: a client with a 5 s timeout,
	// using TLSConfig when it is set.
	HTTPClient *http.Client
	// Logger receives the client's few log lines (topology changes, refresh
	// failures). Default: discard.
	Logger *slog.Logger
	// Registerer, when set, receives the client's metrics (subsystem
	// "client"). A second Client needs a different registry.
	Registerer prometheus.Registerer
}

// NearCache configures the opt-in near cache: Get results kept in the client
// process for at most TTL. A cached read is no staler than TTL: the value it
// returns was the cluster's answer (at the call's level) to a read that began
// at most TTL earlier, and no write by this client to the key has started
// since that read began. Writes by other clients, expiry on the server and
// deletions elsewhere are not seen until the entry ages out, so a key may be
// returned for up to TTL after it expired or another client changed it.
type NearCache struct {
	// Size is the most keys kept (least recently used evicted). 0 disables
	// the cache.
	Size int
	// TTL is the staleness bound. Must be above zero when Size is.
	TTL time.Duration
}

// DefaultPoolSize is PoolSize's default.
const DefaultPoolSize = 16

func (c *Config) setDefaults() error {
	if len(c.Seeds) == 0 {
		return errors.New("client: Config.Seeds is empty")
	}
	if !c.Consistency.valid() {
		return fmt.Errorf("client: invalid consistency %v", c.Consistency)
	}
	if c.Consistency == DefaultLevel {
		c.Consistency = Quorum
	}
	if c.NearCache.Size < 0 || (c.NearCache.Size > 0 && c.NearCache.TTL <= 0) {
		return errors.New("client: NearCache needs Size >= 0 and, with Size > 0, TTL > 0")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.DialTimeout, 2*time.Second)
	def(&c.ReadTimeout, 10*time.Second)
	def(&c.RefreshInterval, 5*time.Second)
	def(&c.DownBackoff, time.Second)
	if c.PoolSize <= 0 {
		c.PoolSize = DefaultPoolSize
	}
	if c.MaxPipeline <= 0 {
		c.MaxPipeline = 256
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 5 * time.Second}
		if c.TLSConfig != nil {
			c.HTTPClient.Transport = &http.Transport{TLSClientConfig: c.TLSConfig}
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// scheme is the one an HTTP address without its own gets.
func (c *Config) scheme() string {
	if c.TLSConfig != nil {
		return "https://"
	}
	return "http://"
}

// Client is a ringkv cluster client. It is safe for concurrent use; create one
// per process and share it.
type Client struct {
	cfg   Config
	log   *slog.Logger
	m     *metrics
	cache *nearCache // nil when disabled

	topo atomic.Pointer[topology]
	// refreshNow asks the refresher for an early refresh.
	refreshNow chan struct{}
	stop       chan struct{}
	stopped    chan struct{}
	closed     atomic.Bool

	mu struct {
		sync.Mutex
		pools map[string]*nodePool // by node id
	}
}

// New connects to the cluster: it fetches the topology from the first seed
// that answers and starts following its changes. Connections to the nodes are
// opened on first use. ctx bounds the initial fetch only.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	c := &Client{
		cfg: cfg, log: cfg.Logger.With("component", "ringkv-client"),
		refreshNow: make(chan struct{}, 1),
		stop:       make(chan struct{}),
		stopped:    make(chan struct{}),
	}
	var err error
	if c.m, err = newMetrics(cfg.Registerer); err != nil {
		return nil, err
	}
	if cfg.NearCache.Size > 0 {
		c.cache = newNearCache(cfg.NearCache.Size, cfg.NearCache.TTL)
	}
	c.mu.pools = map[string]*nodePool{}
	t, err := fetchTopology(ctx, cfg.HTTPClient, cfg.scheme(), cfg.Username, cfg.Password, cfg.Seeds)
	if err != nil {
		return nil, err
	}
	c.install(t)
	go c.refresher()
	return c, nil
}

// Close closes every connection and stops following the topology. Calls in
// flight fail; calls after Close return ErrClosed.
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	close(c.stop)
	<-c.stopped
	c.mu.Lock()
	pools := c.mu.pools
	c.mu.pools = nil
	c.mu.Unlock()
	for _, p := range pools {
		p.close()
	}
	return nil
}

// install makes t current and keeps the pools in step with its members.
func (c *Client) install(t *topology) {
	old := c.topo.Swap(t)
	c.mu.Lock()
	var gone []*nodePool
	for id, p := range c.mu.pools {
		if n, ok := t.nodes[id]; !ok || n.clientAddr != p.addr {
			gone = append(gone, p)
			delete(c.mu.pools, id)
		}
	}
	c.mu.Unlock()
	for _, p := range gone {
		p.close()
	}
	if old == nil || !old.ring.Equal(t.ring) {
		c.log.Info("cluster topology", "nodes", len(t.ids), "replicas", t.ring.RF(), "from", t.from)
	}
}

// pool returns the connection pool of node id, creating it on first use.
func (c *Client) pool(n nodeInfo) (*nodePool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.pools == nil {
		return nil, ErrClosed
	}
	p, ok := c.mu.pools[n.id]
	if !ok {
		p = newNodePool(&c.cfg, n.id, n.clientAddr)
		c.mu.pools[n.id] = p
	}
	return p, nil
}

func (c *Client) refresher() {
	defer close(c.stopped)
	tick := time.NewTicker(c.cfg.RefreshInterval)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		case <-c.refreshNow:
		}
		c.refresh()
		// Errors from many calls at once ask for one refresh, not a storm.
		select {
		case <-c.stop:
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// refresh fetches the topology from the known nodes, then the seeds.
func (c *Client) refresh() {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.DialTimeout+5*time.Second)
	defer cancel()
	// A node that is up answers with the freshest view; ask those first.
	cur := c.topo.Load()
	var addrs []string
	for _, id := range cur.ids {
		if n := cur.nodes[id]; n.up && n.httpAddr != "" {
			addrs = append(addrs, n.httpAddr)
		}
	}
	addrs = append(addrs, c.cfg.Seeds...)
	t, err := fetchTopology(ctx, c.cfg.HTTPClient, c.cfg.scheme(), c.cfg.Username, c.cfg.Password, addrs)
	if err != nil {
		c.m.refreshes.WithLabelValues("error").Inc()
		c.log.Warn("refreshing the cluster topology", "err", err)
		return
	}
	c.m.refreshes.WithLabelValues("ok").Inc()
	c.install(t)
}

// requestRefresh asks for an early topology refresh without waiting for it.
func (c *Client) requestRefresh() {
	select {
	case c.refreshNow <- struct{}{}:
	default:
	}
}

// candidates returns the nodes to try for key in order: its replicas that are
// up, primary first, then the ones that are down or just refused a connection
// (the failure detector may be wrong, and trying costs one dial).
func (c *Client) candidates(t *topology, key string) []nodeInfo {
	ids := t.replicas(key)
	return c.order(t, ids)
}

func (c *Client) order(t *topology, ids []string) []nodeInfo {
	now := time.Now()
	out := make([]nodeInfo, 0, len(ids))
	var later []nodeInfo
	c.mu.Lock()
	pools := c.mu.pools
	for _, id := range ids {
		n := t.nodes[id]
		if p := pools[id]; !n.up || (p != nil && p.skipped(now)) {
			later = append(later, n)
			continue
		}
		out = append(out, n)
	}
	c.mu.Unlock()
	return append(out, later...)
}

// kind says how a request may be retried.
type kind uint8

const (
	// read requests are idempotent: any error that another node may not have
	// (unreachable, too slow, could not gather replicas) is retried on the
	// next candidate while the context allows.
	read kind = iota
	// write requests are sent at most once. Only a request that provably
	// never left the client (the connection could not be opened) goes to the
	// next candidate; every other failure is returned, so a write is never
	// applied twice behind the caller's back.
	write
)

// exec runs req on the first candidate that answers, as k allows.
func (c *Client) exec(ctx context.Context, cmd string, k kind, nodes []nodeInfo, req request) (reply, error) {
	if c.closed.Load() {
		return reply{}, ErrClosed
	}
	start := time.Now()
	var errs []error
	for i, n := range nodes {
		if i > 0 {
			c.m.retries.WithLabelValues(cmd).Inc()
		}
		p, err := c.pool(n)
		if err != nil {
			return reply{}, err
		}
		r := req // each attempt gets its own request and done channel
		rep, err := p.do(ctx, &r)
		if err == nil {
			c.m.observe(cmd, "ok", start)
			return rep, nil
		}
		errs = append(errs, err)
		var se *ServerError
		if !errors.As(err, &se) {
			// The node was unreachable or went quiet: the topology may be
			// stale.
			c.requestRefresh()
		}
		if ctx.Err() != nil || errors.Is(err, ErrClosed) {
			break
		}
		notSent := errors.Is(err, errNotSent)
		if k == write && !notSent {
			break
		}
		if k == read && !notSent && !retryable(err) {
			break
		}
	}
	err := errs[len(errs)-1]
	if len(errs) > 1 {
		err = fmt.Errorf("%w (after %d attempts; earlier: %w)", err, len(errs), errors.Join(errs[:len(errs)-1]...))
	}
	c.m.observe(cmd, resultLabel(err), start)
	return reply{}, fmt.Errorf("client: %s: %w", cmd, err)
}

func resultLabel(err error) string {
	switch {
	case errors.Is(err, ErrTimeout):
		return "timeout"
	case errors.Is(err, ErrUnavailable):
		return "unavailable"
	}
	return "error"
}

// level resolves a call's level.
func (c *Client) level(l Level) Level {
	if l == DefaultLevel {
		return c.cfg.Consistency
	}
	return l
}
