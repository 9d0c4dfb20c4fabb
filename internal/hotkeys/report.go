package hotkeys

import "github.com/ringkv/ringkv/internal/apitypes"

// Report is what GET /v1/hotkeys answers for node: its top n keys (all K for
// n <= 0) as of the last refresh, the window's total rate, and the staleness
// bound of c, the cache beside the tracker (nil when it is off).
func (t *Tracker) Report(node string, n int, c *Cache) apitypes.HotKeysReport {
	rate, _ := t.Totals()
	return apitypes.HotKeysReport{
		Node: node, Window: t.cfg.Window.String(), Rate: rate, MinRate: t.cfg.MinRate,
		CacheTTL: c.TTL().String(), Keys: t.Top(n),
	}
}
