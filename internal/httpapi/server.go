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
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// Server runs the API as a controller-runtime Runnable on every replica.
type Server struct {
	// Settings give the listen address (BindAddress, unless Listener is set) and the
	// certificate directory (CertDir).
	Settings
	// Listener, when set, is served instead of listening on BindAddress.
	Listener        net.Listener
	Handler         http.Handler
	ShutdownTimeout time.Duration
	Log             logr.Logger
	// Limits against slow or abusive clients; zero means the default.
	ReadHeaderTimeout time.Duration // default 5s: slowloris headers
	ReadTimeout       time.Duration // default 15s: a body trickled in
	MaxHeaderBytes    int           // default 32 KiB

	listening atomic.Bool
	address   atomic.Pointer[string]
}

// Address is the address the API listens on once Runnable has bound it ("" before): the
// port chosen when BindAddress asks for any (":0").
func (s *Server) Address() string {
	if a := s.address.Load(); a != nil {
		return *a
	}
	return ""
}

// ErrAddressInUse is returned by Runnable when BindAddress is taken.
var ErrAddressInUse = errors.New("address already in use")

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
		if ln, err = net.Listen("tcp", s.BindAddress); err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return nil, fmt.Errorf("the credits API cannot listen on %s: %w; choose another with --api-bind-address (make run RUN_ARGS=--api-bind-address=127.0.0.1:18080)", s.BindAddress, ErrAddressInUse)
			}
			return nil, fmt.Errorf("the credits API cannot listen on %s (--api-bind-address): %w", s.BindAddress, err)
		}
	}
	addr := ln.Addr().String()
	s.address.Store(&addr)
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
