package server

import (
	"runtime/metrics"
	"strconv"

	"github.com/ringkv/ringkv/internal/config"
)

// memoryInfo is INFO's "# Memory" section in Redis' field names, so that
// tools that watch used_memory against maxmemory work unchanged.
// used_memory is what --max-memory is checked against: the data the storage
// engine holds. used_memory_go_heap adds what Redis has no name for: the Go
// heap of the node's own working memory.
func (s *Server) memoryInfo() map[string]string {
	m := s.store.Metrics()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	var heap uint64
	if sample[0].Value.Kind() == metrics.KindUint64 {
		heap = sample[0].Value.Uint64()
	}
	return map[string]string{
		"used_memory":         strconv.FormatInt(m.MemoryBytes, 10),
		"used_memory_human":   config.FormatBytes(m.MemoryBytes),
		"used_memory_go_heap": strconv.FormatUint(heap, 10),
		"maxmemory":           strconv.FormatInt(m.MaxMemoryBytes, 10),
		"maxmemory_human":     config.FormatBytes(m.MaxMemoryBytes),
		"maxmemory_policy":    "noeviction",
		"storage_engine":      m.Engine,
	}
}
