package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/go-logr/logr"

	"github.com/gitread/usercredits-operator/internal/auth"
)

// MaxBodyBytes is the largest request body read; a {"credits":N} body needs a few dozen.
const MaxBodyBytes = 1 << 20

// Store is the balance storage the API serves (internal/credits.Store).
type Store interface {
	Balance(ctx context.Context, userID string) (int64, error)
	SetBalance(ctx context.Context, userID string, credits int64) (int64, error)
}

// Options configures the handler.
type Options struct {
	Verifier auth.Verifier
	Store    Store
	// AllowUserWrites lets Clerk users POST their own balance. Off by default: a user who
	// can set their own balance can mint credits for free.
	AllowUserWrites bool
	// RequestTimeout bounds each request's authentication and storage work.
	RequestTimeout time.Duration
	// CORSAllowedOrigins are the browser origins allowed to call the API.
	CORSAllowedOrigins []string
	Log                logr.Logger
}

type handler struct {
	opts Options
}

// NewHandler returns the API's http.Handler.
func NewHandler(opts Options) http.Handler {
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 5 * time.Second
	}
	h := &handler{opts: opts}
	return http.HandlerFunc(h.serve)
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	var principal auth.Principal
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			h.opts.Log.Error(nil, "recovered panic", "method", r.Method, "path", r.URL.Path, "panic", p)
			if rec.status == 0 {
				if r.Method == http.MethodPost {
					writeJSON(rec, http.StatusInternalServerError, bodyUnexpectedUpdate)
				} else {
					writeJSON(rec, http.StatusInternalServerError, bodyFetchError)
				}
			}
		}
		// Access log: never the Authorization header or the body.
		h.opts.Log.V(1).Info("request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"durationMs", float64(time.Since(start).Microseconds())/1000, "userID", principal.UserID, "remote", r.RemoteAddr)
	}()

	if h.cors(rec, r) {
		return
	}
	if r.URL.Path != "/api/credits" {
		writeJSON(rec, http.StatusNotFound, bodyNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		rec.Header().Set("Allow", "GET, POST")
		writeJSON(rec, http.StatusMethodNotAllowed, bodyMethodNotAllowed)
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), h.opts.RequestTimeout)
	defer cancel()
	var ok bool
	if principal, ok = h.authenticate(ctx, r); !ok {
		writeJSON(rec, http.StatusUnauthorized, bodyUnauthorized)
		return
	}
	if r.Method == http.MethodGet {
		h.getCredits(ctx, rec, principal)
		return
	}
	h.setCredits(ctx, rec, r, principal)
}

func (h *handler) authenticate(ctx context.Context, r *http.Request) (auth.Principal, bool) {
	token, ok := auth.BearerToken(r.Header.Get("Authorization"))
	if !ok {
		return auth.Principal{}, false
	}
	p, err := h.opts.Verifier.Verify(ctx, token)
	if err != nil {
		// The error describes the claim that failed, never the token itself.
		h.opts.Log.V(1).Info("authentication failed", "reason", err.Error(), "remote", r.RemoteAddr)
		return auth.Principal{}, false
	}
	return p, true
}

func (h *handler) getCredits(ctx context.Context, w http.ResponseWriter, p auth.Principal) {
	n, err := h.opts.Store.Balance(ctx, p.UserID)
	if err != nil {
		h.opts.Log.Error(err, "reading balance", "userID", p.UserID)
		writeJSON(w, http.StatusInternalServerError, bodyFetchError)
		return
	}
	writeJSON(w, http.StatusOK, balanceBody(n))
}

func (h *handler) setCredits(ctx context.Context, w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if p.Kind == auth.KindClerkUser && !h.opts.AllowUserWrites {
		writeJSON(w, http.StatusForbidden, bodyForbidden)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeJSON(w, http.StatusRequestEntityTooLarge, bodyTooLarge)
			return
		}
		writeJSON(w, http.StatusBadRequest, bodyInvalidCredits)
		return
	}
	n, err := ParseCredits(body)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, bodyInvalidCredits)
		return
	}
	n, err = h.opts.Store.SetBalance(ctx, p.UserID, n)
	if err != nil {
		h.opts.Log.Error(err, "setting balance", "userID", p.UserID)
		writeJSON(w, http.StatusInternalServerError, bodyUpdateError)
		return
	}
	h.opts.Log.Info("balance set", "userID", p.UserID, "credits", n)
	writeJSON(w, http.StatusOK, updatedBody(n))
}

// cors adds CORS headers for allowed origins and answers their preflight requests;
// it reports whether the request was fully handled.
func (h *handler) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || !slices.Contains(h.opts.CORSAllowedOrigins, origin) {
		return false
	}
	hdr := w.Header()
	hdr.Set("Access-Control-Allow-Origin", origin)
	hdr.Add("Vary", "Origin")
	if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		return false
	}
	hdr.Set("Access-Control-Allow-Methods", "GET, POST")
	hdr.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
	hdr.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return true
}

// statusRecorder remembers the status written, for the access log and panic recovery.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
