package storage

import (
	"fmt"
	"time"
)

// SyncMode says when acknowledged writes reach stable storage.
type SyncMode int

const (
	// SyncPeriodic commits without waiting for fsync and fsyncs the WAL every
	// PeriodicSyncInterval. A node crash loses at most that window of writes,
	// which replication (other replicas, hints, anti-entropy) restores; this is
	// the default, as in Cassandra's commitlog_sync: periodic and Redis'
	// appendfsync everysec.
	SyncPeriodic SyncMode = iota
	// SyncAlways fsyncs the WAL before Apply returns. Pebble group-commits
	// concurrent syncs, so parallel writers share one fsync.
	SyncAlways
)

// PeriodicSyncInterval is how often SyncPeriodic fsyncs the WAL (design §7).
const PeriodicSyncInterval = 100 * time.Millisecond

// ParseSyncMode parses "always" or "periodic", the --sync flag values.
func ParseSyncMode(s string) (SyncMode, error) {
	switch s {
	case "always":
		return SyncAlways, nil
	case "periodic":
		return SyncPeriodic, nil
	}
	return 0, fmt.Errorf("storage: unknown sync mode %q (want always or periodic)", s)
}

func (m SyncMode) String() string {
	switch m {
	case SyncAlways:
		return "always"
	case SyncPeriodic:
		return "periodic"
	}
	return fmt.Sprintf("SyncMode(%d)", int(m))
}
