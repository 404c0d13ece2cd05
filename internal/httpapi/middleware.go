package httpapi

import (
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gitread/usercredits-operator/internal/auth"
	"github.com/gitread/usercredits-operator/internal/metrics"
)

// observe runs after every request: it turns a panic into the contract's 500 body, counts
// and times the request, and writes the access log line.
func (h *handler) observe(rec *statusRecorder, r *http.Request, start time.Time, principal *auth.Principal) {
	if p := recover(); p != nil {
		if p == http.ErrAbortHandler {
			panic(p)
		}
		h.opts.Log.Error(nil, "recovered panic", "method", r.Method, "path", r.URL.Path, "panic", p)
		if rec.status == 0 {
			body := bodyFetchError
			if r.Method == http.MethodPost {
				body = bodyUnexpectedUpdate
			}
			writeJSON(rec, http.StatusInternalServerError, body)
		}
	}
	routeLabel, methodLabel := metricLabels(r)
	metrics.APIRequests.WithLabelValues(routeLabel, methodLabel, strconv.Itoa(rec.status)).Inc()
	metrics.APIRequestDuration.WithLabelValues(routeLabel, methodLabel).Observe(time.Since(start).Seconds())
	// Access log: never the Authorization header or the body. Checked first because
	// building the arguments costs allocations on the hot path even when it is off.
	if log := h.opts.Log.V(1); log.Enabled() {
		log.Info("request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"durationMs", float64(time.Since(start).Microseconds())/1000, "caller", caller(*principal), "remote", r.RemoteAddr)
	}
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
	hdr.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Idempotency-Key")
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
