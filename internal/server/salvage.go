package server

import (
	"github.com/ringkv/ringkv/internal/salvage"
	"github.com/ringkv/ringkv/internal/storage"
)

// storeSalvaged lists what the store set aside when it opened, through a
// variable a test can replace to make a node believe its store salvaged a
// file.
var storeSalvaged = (*storage.Store).Salvaged

// restoreHold, when set (tests only), holds a salvaged node's restore until
// it is closed (salvage.Config.Hold).
var restoreHold chan struct{}

// noteSalvage takes what the store set aside at open: a node that set
// something aside restores its ranges from its replicas before it serves
// (internal/salvage); s.salv.Start begins that once anti-entropy runs.
func (s *Server) noteSalvage() {
	s.salv = salvage.New(salvage.Config{
		Self: s.cfg.NodeID, Replicas: s.cfg.Replicas, Files: storeSalvaged(s.store),
		Repairs: aeRepairs{s}, Ranges: s.ringRanges,
		Logger: s.log, Registerer: s.reg, Hold: restoreHold,
	})
}

// salvageReady is the readiness check of a salvaged node.
func (s *Server) salvageReady() error {
	if err := s.salv.Err(); err != nil {
		return &notReady{reason: reasonSalvage, err: err}
	}
	return nil
}
