package httpapi

import (
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gitread/usercredits-operator/internal/auth"
	"github.com/gitread/usercredits-operator/internal/metrics"
)

// observe runs after every request: it turns a panic into the contract's 500 body, counts
// and times the request, and writes the access log line.
func (h *Handler) observe(rec *statusRecorder, r *http.Request, start time.Time, principal *auth.Principal) {
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
	requestCounter(routeLabel, methodLabel, rec.status).Inc()
	requestDuration(routeLabel, methodLabel).Observe(time.Since(start).Seconds())
	// Access log: never the Authorization header or the body. Checked first because
	// building the arguments costs allocations on the hot path even when it is off.
	if log := h.opts.Log.V(1); log.Enabled() {
		log.Info("request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"durationMs", float64(time.Since(start).Microseconds())/1000, "caller", caller(*principal), "remote", r.RemoteAddr)
	}
}

// cors adds CORS headers for allowed origins and answers their preflight requests;
// it reports whether the request was fully handled.
func (h *Handler) cors(w http.ResponseWriter, r *http.Request) bool {
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

// The request metrics' children, by their labels: looking a child up by label values
// hashes them on every request, which showed in the GET profile.
var (
	counters  sync.Map // requestKey → prometheus.Counter
	durations sync.Map // requestKey (code 0) → prometheus.Observer
)

type requestKey struct {
	route, method string
	code          int
}

func requestCounter(route, method string, code int) prometheus.Counter {
	key := requestKey{route, method, code}
	if c, ok := counters.Load(key); ok {
		return c.(prometheus.Counter)
	}
	c, _ := counters.LoadOrStore(key, metrics.APIRequests.WithLabelValues(route, method, strconv.Itoa(code)))
	return c.(prometheus.Counter)
}

func requestDuration(route, method string) prometheus.Observer {
	key := requestKey{route: route, method: method}
	if o, ok := durations.Load(key); ok {
		return o.(prometheus.Observer)
	}
	o, _ := durations.LoadOrStore(key, metrics.APIRequestDuration.WithLabelValues(route, method))
	return o.(prometheus.Observer)
}
