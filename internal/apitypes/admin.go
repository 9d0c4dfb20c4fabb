package apitypes

// The bodies of the admin endpoints the CLI reads: the clock (`ringkv
// status`), the hot keys (`ringkv hotkeys`) and repairs (`ringkv repair`).
// The packages that fill them alias the parts they own (antientropy.Progress,
// hotkeys.KeyRate), so each shape is declared once.

// ClockStatus is the body of GET /v1/clock, which `ringkv status` shows.
type ClockStatus struct {
	// Skewed: this node's clock is off from a majority of its peers' and it
	// refuses to coordinate writes; Error says so in words.
	Skewed bool   `json:"skewed"`
	Error  string `json:"error,omitempty"`
	// OffsetMS is how far this node's clock is ahead of its peers' (the
	// median; negative: behind).
	OffsetMS int64 `json:"offset_ms"`
	// ThresholdMS is the offset beyond which the node stops coordinating
	// writes; MaxClockSkewMS the guard on stored versions.
	ThresholdMS    int64 `json:"threshold_ms"`
	MaxClockSkewMS int64 `json:"max_clock_skew_ms"`
	// GuardRefused counts the records refused as too far in the future.
	GuardRefused uint64            `json:"guard_refused"`
	Peers        []PeerClockStatus `json:"peers"`
}

// PeerClockStatus is the offset of this node's clock from one peer's.
type PeerClockStatus struct {
	Peer          string `json:"peer"`
	OffsetMS      int64  `json:"offset_ms"`
	UncertaintyMS int64  `json:"uncertainty_ms"`
}

// HotKeysReport is the body of GET /v1/hotkeys.
type HotKeysReport struct {
	Node string `json:"node"`
	// Window is the span rates are measured over, in Go duration syntax.
	Window string `json:"window"`
	// Rate is all requests per second this node saw over the window.
	Rate float64 `json:"rate"`
	// MinRate is the rate at which a top key counts as hot.
	MinRate float64 `json:"min_rate"`
	// CacheTTL is the hot-key cache's staleness bound; "0s" when it is off.
	CacheTTL string `json:"cache_ttl"`
	// Keys are the top keys, hottest first. Keys that are not valid UTF-8
	// have their invalid bytes replaced by U+FFFD.
	Keys []KeyRate `json:"keys"`
}

// KeyRate is one key's standing in the window.
type KeyRate struct {
	Key string `json:"key"`
	// Rate is requests per second over the window (the part of it that has
	// passed, right after start).
	Rate float64 `json:"rate"`
	// Share is the key's fraction of all requests this node saw in the window.
	Share float64 `json:"share"`
	// Hot: the rate is at or above MinRate, so the mitigations (reads at ONE
	// spread over the replicas, the cache) act on the key.
	Hot bool `json:"hot"`
}

// RepairStatus is the body of GET /v1/repair/status and of POST /v1/repair.
type RepairStatus struct {
	Node      string `json:"node"`
	TreeReady bool   `json:"tree_ready"`
	// LastFullPass is the unix time (seconds) of the last pass that compared
	// every local range with every replica; 0 if none yet.
	LastFullPass int64           `json:"last_full_pass"`
	Repair       *RepairProgress `json:"repair,omitempty"`
	Ranges       []RangeRoot     `json:"ranges,omitempty"`
}

// RepairProgress describes one on-demand repair (ringkv repair).
type RepairProgress struct {
	// ID numbers the repairs this node has run since it started.
	ID uint64 `json:"id"`
	// State is queued, running or done.
	State string `json:"state"`
	Done  bool   `json:"done"`
	// RangesTotal counts the (range, peer) comparisons the pass plans: every
	// local range with each of its other replicas that is up.
	RangesTotal      int `json:"ranges_total"`
	RangesCompared   int `json:"ranges_compared"`
	RangesMismatched int `json:"ranges_mismatched"`
	// RangesSkipped counts comparisons left out because the peer was down,
	// went down during the pass, or failed an earlier comparison of it.
	RangesSkipped   int    `json:"ranges_skipped"`
	RecordsPulled   int64  `json:"records_pulled"`
	RecordsPushed   int64  `json:"records_pushed"`
	RecordsRepaired int64  `json:"records_repaired"`
	Errors          int    `json:"errors"`
	LastError       string `json:"last_error,omitempty"`
	StartedAt       int64  `json:"started_at_unix_ms,omitempty"`
	FinishedAt      int64  `json:"finished_at_unix_ms,omitempty"`
}

// RangeRoot is one local range's Merkle root, as ?roots=true lists them.
type RangeRoot struct {
	Start    uint64   `json:"start"`
	End      uint64   `json:"end"`
	Replicas []string `json:"replicas"`
	Root     uint64   `json:"root"`
}
