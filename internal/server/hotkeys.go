package server

import (
	"context"
	"fmt"

	"github.com/ringkv/ringkv/internal/hotkeys"
)

// hotKeyState is the node's hot-key tracking and its opt-in cache (design
// §10). Both are built by startHotKeys before the coordinator, which observes
// every request on the tracker and reads through the cache.
type hotKeyState struct {
	tracker *hotkeys.Tracker
	// cache is nil (off, and still safe to call) unless --hot-cache-ttl > 0.
	cache *hotkeys.Cache
}

// startHotKeys builds the tracker and the cache from the config and starts
// the tracker's refresh loop.
func (s *Server) startHotKeys() error {
	tcfg := hotkeys.DefaultConfig()
	tcfg.Window = s.cfg.HotKeysWindow
	tcfg.K = s.cfg.HotKeysK
	tcfg.MinRate = s.cfg.HotKeysMinRate
	tcfg.Clock = s.wall
	tcfg.Logger = s.log
	tcfg.Registerer = s.reg
	t, err := hotkeys.NewTracker(tcfg)
	if err != nil {
		return fmt.Errorf("server: hot keys: %w", err)
	}
	c, err := hotkeys.NewCache(hotkeys.CacheConfig{TTL: s.cfg.HotCacheTTL, Clock: s.wall, Registerer: s.reg})
	if err != nil {
		return fmt.Errorf("server: hot-key cache: %w", err)
	}
	if err := t.Start(); err != nil {
		return err
	}
	s.hot.tracker, s.hot.cache = t, c
	if c != nil {
		s.log.Info("hot-key cache on: reads of hot keys may miss writes made through other nodes", "ttl", s.cfg.HotCacheTTL)
	}
	return nil
}

// stopHotKeys stops the tracker's refresh loop; Observe stays safe to call.
func (s *Server) stopHotKeys(ctx context.Context) error {
	if s.hot.tracker == nil {
		return nil
	}
	return s.hot.tracker.Shutdown(ctx)
}
