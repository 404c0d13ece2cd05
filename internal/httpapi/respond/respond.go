// Package respond writes the API's JSON answers: the one writer of httpapi's endpoints and
// of the Stripe webhook (internal/payments), which httpapi mounts. It imports neither, so
// both can use it.
package respond

import (
	"net/http"
	"strconv"
)

// Header values every answer carries, shared: net/http only reads them.
var (
	contentTypeJSON = []string{"application/json"}
	noStore         = []string{"no-store"}
)

// JSON answers status with body, a complete JSON document. Headers are set by their
// canonical keys directly: Header().Set canonicalizes and allocates on every answer.
func JSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = contentTypeJSON
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	h["Cache-Control"] = noStore
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
