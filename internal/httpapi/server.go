package httpapi

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/go-logr/logr"
)

// Server runs the API as a controller-runtime Runnable on every replica.
type Server struct {
	// Addr is the listen address, used when Listener is nil.
	Addr string
	// Listener, when set, is served instead of listening on Addr (tests use 127.0.0.1:0).
	Listener        net.Listener
	Handler         http.Handler
	ShutdownTimeout time.Duration
	Log             logr.Logger
}

// NeedLeaderElection is false: every replica serves the API, not just the leader.
func (s *Server) NeedLeaderElection() bool { return false }

// Start serves until ctx is done, then shuts down gracefully: in-flight requests finish
// within ShutdownTimeout.
func (s *Server) Start(ctx context.Context) error {
	ln := s.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.Addr); err != nil {
			return err
		}
	}
	srv := &http.Server{
		Handler: s.Handler,
		// Slow or stalled clients (slowloris) are cut off instead of holding connections.
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	timeout := s.ShutdownTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	stopped := make(chan error, 1)
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		stopped <- srv.Shutdown(shutdownCtx)
	}()
	s.Log.Info("serving the credits API", "address", ln.Addr().String())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return <-stopped
}
