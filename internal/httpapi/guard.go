package httpapi

import (
	"context"
	"errors"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/ringkv/ringkv/internal/apitypes"
	"github.com/ringkv/ringkv/internal/auth"
)

// identityKey carries the request's authenticated user in its context.
type identityKey struct{}

// IdentityFrom returns the user a request authenticated as; with
// authentication off it is the default user with every right.
func IdentityFrom(ctx context.Context) (auth.Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(auth.Identity)
	return id, ok
}

// needOpen marks a route that needs no credentials.
const needOpen auth.Rights = 1 << 7

// routeNeeds is the right a request needs: reads of keys need read, writes
// write, the operator's endpoints (repair, decommission and the other admin
// actions, hot keys, debug and pprof, metrics) admin, and the rest (cluster
// status, clock) only a user. Probes stay open for load balancers and
// orchestrators: they carry no key names and no secrets.
func (a *API) routeNeeds(r *http.Request) auth.Rights {
	p := r.URL.Path
	switch {
	case p == "/livez" || p == "/healthz" || p == "/readyz":
		return needOpen
	case p == "/metrics":
		if a.cfg.MetricsOpen {
			return needOpen
		}
		return auth.Admin
	case strings.HasPrefix(p, "/v1/kv/"):
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			return auth.Read
		}
		return auth.Write
	case p == "/v1/repair" || strings.HasPrefix(p, "/v1/repair/"),
		strings.HasPrefix(p, "/v1/admin/"),
		p == "/v1/hotkeys",
		strings.HasPrefix(p, "/debug/"):
		return auth.Admin
	}
	return 0
}

// guard authenticates and authorizes every request, and refuses
// state-changing requests a browser could have been made to send from
// another site, before next sees them.
func (a *API) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := crossSite(r); err != nil {
			status, code := http.StatusForbidden, apitypes.CodeForbidden
			if errors.Is(err, errMediaType) {
				status, code = http.StatusUnsupportedMediaType, apitypes.CodeUnsupportedMediaType
			}
			writeJSON(w, status, apitypes.ErrorBody{Error: err.Error(), Code: code})
			return
		}
		need := a.routeNeeds(r)
		if need == needOpen {
			next.ServeHTTP(w, r)
			return
		}
		id := auth.Anonymous
		if a.cfg.Auth.Enabled() {
			user, pass, ok := credentials(r)
			if !ok {
				unauthorized(w, "authentication required: send Authorization: Basic (user:password) or Bearer (the default user's password)")
				return
			}
			var err error
			id, err = a.cfg.Auth.Verify(user, pass, remoteIP(r.RemoteAddr), "http")
			switch {
			case errors.Is(err, auth.ErrTooMany):
				w.Header().Set("Retry-After", "1")
				writeJSON(w, http.StatusTooManyRequests, apitypes.ErrorBody{Error: err.Error(), Code: apitypes.CodeTooManyAttempts})
				return
			case err != nil:
				unauthorized(w, "invalid username-password pair or user is disabled")
				return
			}
		}
		if !id.Rights.Has(need) {
			writeJSON(w, http.StatusForbidden, apitypes.ErrorBody{
				Error: "user " + id.Name + " lacks the " + need.String() + " right for " + r.Method + " " + r.URL.Path,
				Code:  apitypes.CodeForbidden,
			})
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
	})
}

func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Basic realm="ringkv", charset="UTF-8"`)
	writeJSON(w, http.StatusUnauthorized, apitypes.ErrorBody{Error: msg, Code: apitypes.CodeUnauthorized})
}

// credentials reads Authorization: Basic (user:password) or Bearer (the
// default user's password).
func credentials(r *http.Request) (user, pass []byte, ok bool) {
	if u, p, ok := r.BasicAuth(); ok {
		if u == "" {
			u = auth.DefaultUser
		}
		return []byte(u), []byte(p), true
	}
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return []byte(auth.DefaultUser), []byte(strings.TrimSpace(h[7:])), true
	}
	return nil, nil, false
}

func remoteIP(addr string) netip.Addr {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return ap.Addr()
	}
	host, _, _ := net.SplitHostPort(addr)
	ip, _ := netip.ParseAddr(host)
	return ip
}

var errMediaType = errors.New("state-changing requests must declare Content-Type application/json or application/octet-stream")

// crossSite refuses a state-changing request that a page on another site
// could have made a browser send with the user's credentials (CSRF). Every
// current browser sends Origin with such a request, so one whose Origin is
// not this host is refused; and the only bodies a cross-site form or a
// "simple" request can declare (forms, text/plain) are refused whatever
// the Origin, which covers browsers that omit it. A request without
// Content-Type and without Origin comes from no browser and is served, so
// curl and scripts need not set one for an empty POST.
func crossSite(r *http.Request) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	origin := r.Header.Get("Origin")
	if origin != "" {
		u, err := url.Parse(origin)
		if err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
			return errors.New("cross-site request refused: Origin " + truncate(origin, 128) + " is not this host")
		}
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
		return errors.New("cross-site request refused (Sec-Fetch-Site: " + truncate(site, 32) + ")")
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		if origin != "" {
			return errMediaType
		}
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || (mt != "application/json" && mt != "application/octet-stream") {
		return errMediaType
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
