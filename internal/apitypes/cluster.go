// Package apitypes holds the JSON bodies of the HTTP API, and of the
// --addr-file, that the server writes and its readers (the client package,
// the CLI, supervisors and test harnesses) decode. It imports
// only the standard library, so a program that links the client does not
// link the server: the storage engines, replication and gossip stay out of
// its build (a test in client checks this).
package apitypes

// ClusterStatus is the body of GET /v1/cluster, which the server answers and
// `ringkv status` and the client read.
type ClusterStatus struct {
	// Self is the id of the node that answered.
	Self     string       `json:"self"`
	Nodes    []NodeStatus `json:"nodes"`
	Replicas int          `json:"replicas"`
	VNodes   int          `json:"vnodes"`
	// LastRepairPass is the unix time (seconds) of the answering node's last
	// anti-entropy pass over all its ranges; 0 if none has completed.
	LastRepairPass int64 `json:"last_repair_pass"`
	// Ready is the answering node's readiness: "ready", or why /readyz
	// answers 503 (forming: waiting for n3, joining: 0% owned, removed ...).
	Ready string `json:"ready"`
	// Alarms are what is wrong with the answering node itself and keeps it
	// from serving fully (a full disk, a restore after a salvage), each a
	// sentence for an operator; absent when nothing is.
	Alarms []string `json:"alarms,omitempty"`
	// Version, Commit and BuildDate identify the answering node's binary,
	// as `ringkv version` prints them.
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	BuildDate string `json:"build_date"`
}

// NodeStatus is one member as the answering node sees it.
type NodeStatus struct {
	ID         string `json:"id"`
	ClientAddr string `json:"client_addr"`
	PeerAddr   string `json:"peer_addr"`
	HTTPAddr   string `json:"http_addr"`
	GossipAddr string `json:"gossip_addr"`
	Zone       string `json:"zone"`
	// Up is the failure detector's verdict.
	Up bool `json:"up"`
	// State is the membership state: joining, normal, leaving, removed or down.
	State string `json:"state"`
	// Ownership is the fraction of the ring (0..1) this node is the primary
	// replica for; it sums to 1 over the nodes.
	Ownership float64 `json:"ownership"`
	// Hints is the number of hints the answering node holds for this one.
	Hints int64 `json:"hints"`
	// StreamRangesLeft is the number of ranges this node still had to pull
	// for the topology change in progress, at the answering node's last
	// check; absent when it has none or the answering node does not know.
	StreamRangesLeft int `json:"stream_ranges_left,omitempty"`
	// StreamProgress is the share (0..1) of its ranges to pull that this node
	// has pulled; only the answering node reports its own.
	StreamProgress float64 `json:"stream_progress,omitempty"`
	// StreamedBytes is what this node received by streaming since it
	// started; only the answering node reports its own.
	StreamedBytes int64 `json:"streamed_bytes,omitempty"`
}
