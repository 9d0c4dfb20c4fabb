package server

import (
	"context"
	"errors"

	"github.com/ringkv/ringkv/internal/httpapi"
)

func (s *Server) startRebalance() error { return nil }

func (s *Server) stopRebalance(ctx context.Context) error { return nil }

func (s *Server) serveRebalance(ctx context.Context, from string, method uint8, payload []byte) ([]byte, error) {
	return nil, errors.New("server: rebalancing not running")
}

func (s *Server) mountRebalance(api *httpapi.API) {}
