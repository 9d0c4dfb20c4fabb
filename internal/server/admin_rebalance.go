package server

import (
	"fmt"
	"net/http"

	"github.com/ringkv/ringkv/internal/apitypes"
	"github.com/ringkv/ringkv/internal/httpapi"
	"github.com/ringkv/ringkv/internal/membership"
)

// The admin API's topology changes and the status page's streaming fields;
// the rebalance coordinator (rebalance.go) carries the changes out.

func (s *Server) mountRebalance(api *httpapi.API) {
	api.Handle("POST /v1/admin/decommission", http.HandlerFunc(s.handleDecommission))
	api.Handle("POST /v1/admin/removenode", http.HandlerFunc(s.handleRemoveNode))
}

// adminError answers an admin request with the JSON error body the CLI reads.
func adminError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, "{\"error\":%q,\"code\":%q}\n", msg, code)
}

func adminOK(w http.ResponseWriter, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintf(w, "{\"status\":%q}\n", msg)
}

// handleDecommission starts streaming this node's ranges away. The node ends
// removed: out of the ring, still running until the operator stops it.
func (s *Server) handleDecommission(w http.ResponseWriter, r *http.Request) {
	v := s.topo.Current()
	me := v.Members[s.cfg.NodeID]
	switch {
	case me.State == membership.Leaving:
		adminOK(w, "already leaving")
		return
	case me.State != membership.Normal:
		adminError(w, http.StatusConflict, "BADSTATE", fmt.Sprintf("node is %s, only a normal node can be decommissioned", me.State))
		return
	case v.Future != nil:
		adminError(w, http.StatusConflict, "BUSY", "another topology change is in progress; retry when it completes")
		return
	case v.Ring.Len() < 2:
		adminError(w, http.StatusConflict, "LASTNODE", "the last node of a cluster cannot be decommissioned")
		return
	}
	if err := s.rebal.SetOwnState(r.Context(), membership.Leaving); err != nil {
		adminError(w, http.StatusInternalServerError, "ERR", err.Error())
		return
	}
	adminOK(w, "leaving")
}

// handleRemoveNode takes a dead node out: it is marked leaving everywhere,
// its ranges' new owners pull them from the surviving replicas, then the
// smallest normal node marks it removed.
func (s *Server) handleRemoveNode(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	v := s.topo.Current()
	m, ok := v.Members[id]
	switch {
	case id == "":
		adminError(w, http.StatusBadRequest, "BADREQUEST", "missing ?id=")
		return
	case !ok:
		adminError(w, http.StatusNotFound, "NOTFOUND", fmt.Sprintf("no member %q (already removed?)", id))
		return
	case id == s.cfg.NodeID || m.Up:
		adminError(w, http.StatusConflict, "NODEUP", fmt.Sprintf("%s is up: decommission a live node instead", id))
		return
	case m.State == membership.Leaving:
		adminOK(w, "already being removed")
		return
	case v.Future != nil:
		adminError(w, http.StatusConflict, "BUSY", "another topology change is in progress; retry when it completes")
		return
	}
	if err := s.rebal.MarkEverywhere(r.Context(), id, membership.Leaving); err != nil {
		// The mark is set here and spreads by gossip: report, but go on.
		s.log.Warn("removenode: some members not told directly", "err", err)
	}
	adminOK(w, "removing")
}

// addStreamStatus fills the streaming fields of the status page.
func (s *Server) addStreamStatus(nodes []apitypes.NodeStatus) {
	if s.rebal == nil {
		return
	}
	left, own := s.rebal.StreamStatus()
	for i := range nodes {
		n := &nodes[i]
		n.StreamRangesLeft = left[n.ID]
		if n.ID == s.cfg.NodeID {
			n.StreamedBytes = own.Bytes
			if own.Total > 0 {
				n.StreamProgress = float64(own.Done) / float64(own.Total)
			}
		}
	}
}
