package rebalance

import (
	"context"
	"fmt"

	"github.com/ringkv/ringkv/internal/apitypes"
	"github.com/ringkv/ringkv/internal/membership"
)

// The operator's topology changes, as the admin API starts them. Each checks
// that the change may start, sets the state that starts it, and leaves the
// rest to the coordinator's steps.

// Codes of a Refusal: the admin API's error codes, which the CLI reads.
const (
	CodeBadRequest = apitypes.CodeAdminBadRequest
	CodeNotFound   = apitypes.CodeAdminNotFound
	CodeBadState   = apitypes.CodeAdminBadState
	CodeBusy       = apitypes.CodeAdminBusy
	CodeLastNode   = apitypes.CodeAdminLastNode
	CodeNodeUp     = apitypes.CodeAdminNodeUp
)

// Refusal is a change the coordinator will not start, and why.
type Refusal struct {
	Code string
	Msg  string
}

func (r *Refusal) Error() string { return r.Msg }

func refuse(code, format string, args ...any) error {
	return &Refusal{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Decommission starts streaming this node's ranges away: the node goes
// leaving, then removed once its ranges' new owners hold them, and keeps
// running until the operator stops it. It returns what the node now does;
// a *Refusal when the change cannot start.
func (c *Coordinator) Decommission(ctx context.Context) (string, error) {
	v := c.cfg.Topology.Current()
	me := v.Members[c.cfg.Self]
	switch {
	case me.State == membership.Leaving:
		return "already leaving", nil
	case me.State != membership.Normal:
		return "", refuse(CodeBadState, "node is %s, only a normal node can be decommissioned", me.State)
	case v.Future != nil:
		return "", refuse(CodeBusy, "another topology change is in progress; retry when it completes")
	case v.Ring.Len() < 2:
		return "", refuse(CodeLastNode, "the last node of a cluster cannot be decommissioned")
	}
	if err := c.SetOwnState(ctx, membership.Leaving); err != nil {
		return "", err
	}
	return "leaving", nil
}

// RemoveNode takes a dead node out: it is marked leaving everywhere, its
// ranges' new owners pull them from the surviving replicas, then the
// smallest normal node marks it removed. It returns what the cluster now
// does; a *Refusal when the change cannot start.
func (c *Coordinator) RemoveNode(ctx context.Context, id string) (string, error) {
	v := c.cfg.Topology.Current()
	m, ok := v.Members[id]
	switch {
	case id == "":
		return "", refuse(CodeBadRequest, "missing ?id=")
	case !ok:
		return "", refuse(CodeNotFound, "no member %q (already removed?)", id)
	case id == c.cfg.Self || m.Up:
		return "", refuse(CodeNodeUp, "%s is up: decommission a live node instead", id)
	case m.State == membership.Leaving:
		return "already being removed", nil
	case v.Future != nil:
		return "", refuse(CodeBusy, "another topology change is in progress; retry when it completes")
	}
	if err := c.MarkEverywhere(ctx, id, membership.Leaving); err != nil {
		// The mark is set here and spreads by gossip: report, but go on.
		c.log.Warn("removenode: some members not told directly", "err", err)
	}
	return "removing", nil
}

// RefusalCode is the admin API's error code for r.
func (r *Refusal) RefusalCode() string { return r.Code }
