package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"
)

// Errors of Verify.
var (
	// ErrWrongPass is a wrong password, an unknown user, or a user who may
	// not log in; the three are not told apart, as in Redis.
	ErrWrongPass = errors.New("invalid username-password pair or user is disabled")
	// ErrTooMany refuses a source that failed too often lately, before its
	// password is even checked.
	ErrTooMany = errors.New("too many failed authentication attempts from this address; try again later")
)

// Config configures an Authenticator. Zero fields take the defaults noted.
type Config struct {
	// Password is the default user's password, with every right; empty
	// disables the default user when UsersFile is set.
	Password string
	// UsersFile is the path of the users file (see package doc); empty: none.
	UsersFile string
	// FailBurst failed logins a source may make at once (default 10), and
	// FailRate more per second after that (default 1).
	FailBurst int
	FailRate  float64
	// LogEvery is how often failed logins from one source are logged, with
	// their count since the last line (default 10 s).
	LogEvery time.Duration
	// CacheSize bounds the verified credentials kept (default 4096).
	CacheSize int
	Logger    *slog.Logger
	// Registerer receives the failed-login metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// now is the clock, replaced in tests.
	now func() time.Time
}

// Authenticator verifies credentials. Safe for concurrent use.
type Authenticator struct {
	cfg      Config
	enabled  bool
	password [sha256.Size]byte // of the default user, when set
	users    map[string]user
	// dummy is a hash compared against for an unknown user, so that a
	// missing user costs as much as a wrong password and is not revealed
	// by the time an answer takes.
	dummy []byte
	log   *slog.Logger

	cacheKey [32]byte
	cacheMu  sync.Mutex
	cache    map[[sha256.Size]byte]Identity

	sources *sources
	m       *metrics
}

// New builds an Authenticator, loading cfg.UsersFile.
func New(cfg Config) (*Authenticator, error) {
	if cfg.FailBurst <= 0 {
		cfg.FailBurst = 10
	}
	if cfg.FailRate <= 0 {
		cfg.FailRate = 1
	}
	if cfg.LogEvery <= 0 {
		cfg.LogEvery = 10 * time.Second
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 4096
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	a := &Authenticator{
		cfg:   cfg,
		users: map[string]user{},
		cache: map[[sha256.Size]byte]Identity{},
		log:   cfg.Logger.With("component", "auth"),
	}
	if cfg.UsersFile != "" {
		users, err := loadUsers(cfg.UsersFile)
		if err != nil {
			return nil, err
		}
		if len(users) == 0 && cfg.Password == "" {
			return nil, errors.New("auth: users file " + cfg.UsersFile + " lists no user and --password is empty: no one could log in")
		}
		for _, u := range users {
			a.users[u.name] = u
		}
		a.enabled = true
	}
	if cfg.Password != "" {
		a.password = sha256.Sum256([]byte(cfg.Password))
		a.enabled = true
	}
	if _, err := rand.Read(a.cacheKey[:]); err != nil {
		return nil, err
	}
	// The dummy's cost matches the users' so unknown names take as long.
	cost := BcryptCost
	for _, u := range a.users {
		if c, err := bcrypt.Cost(u.hash); err == nil {
			cost = c
		}
		break
	}
	if a.enabled && len(a.users) > 0 {
		var err error
		if a.dummy, err = bcrypt.GenerateFromPassword(a.cacheKey[:16], cost); err != nil {
			return nil, err
		}
	}
	a.sources = newSources(cfg)
	a.m = newMetrics(cfg.Registerer)
	return a, nil
}

// Enabled reports whether clients must authenticate: a password or a users
// file is set. When not, every client is the default user with every right.
func (a *Authenticator) Enabled() bool { return a != nil && a.enabled }

// HasDefaultPassword reports whether AUTH <password> (no user name) can succeed.
func (a *Authenticator) HasDefaultPassword() bool { return a != nil && a.cfg.Password != "" }

// Anonymous is the identity of a client when authentication is off.
var Anonymous = Identity{Name: DefaultUser, Rights: All}

// Quick reports whether Verify(name, pass, ...) answers without a bcrypt
// check: authentication is off, the user is the default one, or these exact
// credentials were verified before. An event loop runs only such checks.
func (a *Authenticator) Quick(name, pass []byte) bool {
	if !a.Enabled() || string(name) == DefaultUser {
		return true
	}
	_, ok := a.cached(name, pass)
	return ok
}

// Verify checks name and pass for a client at src (its address, for the
// failed-login limit and log) and returns who it is. proto names the port in
// logs and metrics ("resp", "http").
func (a *Authenticator) Verify(name, pass []byte, src netip.Addr, proto string) (Identity, error) {
	if !a.Enabled() {
		return Anonymous, nil
	}
	if id, ok := a.cached(name, pass); ok {
		return id, nil
	}
	if !a.sources.allowed(src) {
		a.m.refused.WithLabelValues(proto).Inc()
		a.sources.failed(src, name, proto, true, a.log)
		return Identity{}, ErrTooMany
	}
	id, ok := a.check(name, pass)
	if !ok {
		a.m.failures.WithLabelValues(proto).Inc()
		a.sources.failed(src, name, proto, false, a.log)
		return Identity{}, ErrWrongPass
	}
	if string(name) != DefaultUser {
		a.remember(name, pass, id)
	}
	return id, nil
}

// check compares the credentials, in constant time for the default user and
// through bcrypt for the others.
func (a *Authenticator) check(name, pass []byte) (Identity, bool) {
	if string(name) == DefaultUser {
		if a.cfg.Password == "" {
			return Identity{}, false
		}
		// Hashing first makes the comparison's time independent of the
		// password's length, too.
		got := sha256.Sum256(pass)
		if subtle.ConstantTimeCompare(got[:], a.password[:]) != 1 {
			return Identity{}, false
		}
		return Identity{Name: DefaultUser, Rights: All}, true
	}
	u, ok := a.users[string(name)]
	if !ok {
		if a.dummy != nil {
			_ = bcrypt.CompareHashAndPassword(a.dummy, pass)
		}
		return Identity{}, false
	}
	if bcrypt.CompareHashAndPassword(u.hash, pass) != nil {
		return Identity{}, false
	}
	return Identity{Name: u.name, Rights: u.rights}, true
}

// cacheID is the cache's key for a pair of credentials: a keyed hash, so the
// cache holds no password nor anything that can be checked against one
// without the process's random key.
func (a *Authenticator) cacheID(name, pass []byte) [sha256.Size]byte {
	h := hmac.New(sha256.New, a.cacheKey[:])
	h.Write(name)
	h.Write([]byte{0})
	h.Write(pass)
	var id [sha256.Size]byte
	h.Sum(id[:0])
	return id
}

func (a *Authenticator) cached(name, pass []byte) (Identity, bool) {
	if len(a.users) == 0 {
		return Identity{}, false
	}
	k := a.cacheID(name, pass)
	a.cacheMu.Lock()
	defer a.cacheMu.Unlock()
	id, ok := a.cache[k]
	return id, ok
}

func (a *Authenticator) remember(name, pass []byte, id Identity) {
	k := a.cacheID(name, pass)
	a.cacheMu.Lock()
	defer a.cacheMu.Unlock()
	if len(a.cache) >= a.cfg.CacheSize {
		// Only correct credentials get here, so the cache fills only as
		// fast as real users and passwords appear; starting over is rare
		// and costs one bcrypt per user.
		clear(a.cache)
	}
	a.cache[k] = id
}
