package httpapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// Server runs the API as a controller-runtime Runnable on every replica.
type Server struct {
	// Addr is the listen address, used when Listener is nil.
	Addr string
	// Listener, when set, is served instead of listening on Addr (tests use 127.0.0.1:0).
	Listener net.Listener
	Handler  http.Handler
	// CertDir, when set, holds tls.crt and tls.key (the controller-runtime convention):
	// the API is served over HTTPS only, and renewed files (cert-manager) are picked up
	// without a restart.
	CertDir         string
	ShutdownTimeout time.Duration
	Log             logr.Logger
	// Limits against slow or abusive clients; zero means the default.
	ReadHeaderTimeout time.Duration // default 5s: slowloris headers
	ReadTimeout       time.Duration // default 15s: a body trickled in
	MaxHeaderBytes    int           // default 32 KiB

	listening atomic.Bool
}

// Listening is a readiness check: it fails until the API accepts connections, and again
// once it shuts down, so that no replica is marked ready without serving.
func (s *Server) Listening(*http.Request) error {
	if !s.listening.Load() {
		return errors.New("the credits API is not listening")
	}
	return nil
}

// Runnable binds the listener and returns the server as the manager runs it: in its group
// of HTTP servers, which start before the informer caches have synced, so that a replica
// serves (and is ready) without waiting for the first list of every object. ctx bounds
// the certificate watcher.
func (s *Server) Runnable(ctx context.Context) (*manager.Server, error) {
	ln := s.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.Addr); err != nil {
			return nil, err
		}
	}
	srv := &http.Server{
		Handler: s.Handler,
		// Slow or stalled clients (slowloris) are cut off instead of holding connections.
		ReadHeaderTimeout: orDefault(s.ReadHeaderTimeout, 5*time.Second),
		ReadTimeout:       orDefault(s.ReadTimeout, 15*time.Second),
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    orDefault(s.MaxHeaderBytes, 32<<10),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	if s.CertDir != "" {
		watcher, err := certwatcher.New(filepath.Join(s.CertDir, "tls.crt"), filepath.Join(s.CertDir, "tls.key"))
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("API certificate in %s: %w", s.CertDir, err)
		}
		go func() {
			if err := watcher.Start(ctx); err != nil {
				s.Log.Error(err, "watching the API certificate")
			}
		}()
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: watcher.GetCertificate}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	srv.RegisterOnShutdown(func() { s.listening.Store(false) })
	s.listening.Store(true) // bound: connections queue until Serve takes them
	timeout := orDefault(s.ShutdownTimeout, 10*time.Second)
	s.Log.Info("serving the credits API", "address", ln.Addr().String(), "tls", s.CertDir != "")
	return &manager.Server{Name: "credits-api", Server: srv, Listener: ln, ShutdownTimeout: &timeout}, nil
}

// Start serves until ctx is done, then shuts down gracefully: in-flight requests finish
// within ShutdownTimeout.
func (s *Server) Start(ctx context.Context) error {
	r, err := s.Runnable(ctx)
	if err != nil {
		return err
	}
	defer s.listening.Store(false)
	return r.Start(ctx)
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
