package admin

import (
	"context"
	"errors"
	"net/http"

	"github.com/ringkv/ringkv/internal/apitypes"
)

// Changes is the node's rebalance coordinator as the operator's topology
// changes reach it. Each returns what the node or cluster now does, or an
// error; one with a RefusalCode() method is a change refused for a reason the
// operator can act on, and is answered with that code.
type Changes interface {
	Decommission(ctx context.Context) (string, error)
	RemoveNode(ctx context.Context, id string) (string, error)
}

// refusal is the form of a refused change's error.
type refusal interface {
	error
	RefusalCode() string
}

// refusalStatus is the HTTP status of a refusal code: a request that names
// no node or an unknown one, else a conflict with the cluster's state.
var refusalStatus = map[string]int{
	apitypes.CodeAdminBadRequest: http.StatusBadRequest,
	apitypes.CodeAdminNotFound:   http.StatusNotFound,
}

// mountChanges serves POST /v1/admin/decommission (this node streams its
// ranges away and ends removed) and POST /v1/admin/removenode?id= (a dead
// node's ranges are rebuilt from the surviving replicas). Both answer 202
// with {"status": ...} once the change has started.
func mountChanges(m Mux, n Node) {
	answer := func(w http.ResponseWriter, status string, err error) {
		var r refusal
		switch {
		case errors.As(err, &r):
			code := refusalStatus[r.RefusalCode()]
			if code == 0 {
				code = http.StatusConflict
			}
			writeJSON(w, n.Logger, "admin refusal", code, false, apitypes.ErrorBody{Error: r.Error(), Code: r.RefusalCode()})
		case err != nil:
			writeJSON(w, n.Logger, "admin error", http.StatusInternalServerError, false, apitypes.ErrorBody{Error: err.Error(), Code: "ERR"})
		default:
			writeJSON(w, n.Logger, "admin answer", http.StatusAccepted, false, struct {
				Status string `json:"status"`
			}{status})
		}
	}
	m.Handle("POST /v1/admin/decommission", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, err := n.Changes.Decommission(r.Context())
		answer(w, st, err)
	}))
	m.Handle("POST /v1/admin/removenode", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, err := n.Changes.RemoveNode(r.Context(), r.URL.Query().Get("id"))
		answer(w, st, err)
	}))
}
