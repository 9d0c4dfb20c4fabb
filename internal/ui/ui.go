// Package ui is the node's web dashboard (/ui): plain HTML, CSS and
// JavaScript embedded in the binary, with no build step and nothing loaded
// from elsewhere, so it works on a machine without internet access. The page
// only reads: it polls the node's JSON endpoints (/v1/ui/overview,
// /v1/hotkeys) with the credentials the browser already sent for the page,
// and so follows the HTTP port's authentication.
//
// Stats (stats.go) is what the page's poll shows: each node samples its own
// request rate and latency, and the node that serves the page gathers every
// member's figures over the peer port into the Overview.
package ui

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var files embed.FS

// Handler serves the dashboard's files, the page at "/".
func Handler() http.Handler {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	fsrv := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The page is small and changes with the binary: always revalidate,
		// so an upgraded node never runs a stale script against new JSON.
		w.Header().Set("Cache-Control", "no-cache")
		// Everything the page needs comes from this node; nothing else may
		// run in it, and no other site may frame it.
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		fsrv.ServeHTTP(w, r)
	})
}
