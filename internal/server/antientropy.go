package server

import (
	"context"
	"errors"

	"github.com/ringkv/ringkv/internal/httpapi"
	"github.com/ringkv/ringkv/internal/record"
)

// onApply is storage's hook on every record change; anti-entropy keeps its
// bucket hashes current from it.
func (s *Server) onApply(token uint64, key []byte, old, new *record.Record) {}

func (s *Server) startAntiEntropy() error { return nil }

func (s *Server) stopAntiEntropy(ctx context.Context) error { return nil }

func (s *Server) serveAntiEntropy(ctx context.Context, from string, method uint8, payload []byte) ([]byte, error) {
	return nil, errors.New("server: anti-entropy not running")
}

func (s *Server) mountAntiEntropy(api *httpapi.API) {}
