package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/yaml"

	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/auth"
	"github.com/gitread/usercredits-operator/internal/payments"
	"github.com/gitread/usercredits-operator/test/framework"
)

// openAPICase is one request sent to the handler, and the status the document must list.
type openAPICase struct {
	op, method, path, body string
	header                 []string
	storeErr               error
	result                 account.Result
	userWrites             bool
	rateLimit              float64 // with repeat: sent repeat more times first
	repeat                 int
	status                 int
	wantBody               string // when set, the exact body
	stripe                 bool   // the Stripe webhook is enabled
}

// document is docs/openapi.yaml as generic JSON values, with local $refs resolved on use.
type document struct{ root map[string]any }

func loadDocument(t *testing.T) document {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(framework.RepoRoot(), "docs", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	if root["openapi"] != "3.1.0" {
		t.Fatalf("openapi version %v, want 3.1.0", root["openapi"])
	}
	return document{root}
}

// deref follows a local $ref.
func (d document) deref(v any) map[string]any {
	m, _ := v.(map[string]any)
	ref, ok := m["$ref"].(string)
	if !ok {
		return m
	}
	var cur any = d.root
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		cur = cur.(map[string]any)[part]
	}
	return d.deref(cur)
}

// responses lists the documented statuses of each "METHOD path".
func (d document) responses() map[string]map[string]map[string]any {
	out := map[string]map[string]map[string]any{}
	for path, item := range d.root["paths"].(map[string]any) {
		for method, op := range item.(map[string]any) {
			key := strings.ToUpper(method) + " " + path
			out[key] = map[string]map[string]any{}
			for status, resp := range op.(map[string]any)["responses"].(map[string]any) {
				out[key][status] = d.deref(resp)
			}
		}
	}
	return out
}

// checkSchema checks value against the subset of JSON Schema the document uses: type (one,
// or a list of which value must fit one), const, enum, properties (no others allowed),
// required, items.
func (d document) checkSchema(schema map[string]any, value any, at string) error {
	schema = d.deref(schema)
	if c, ok := schema["const"]; ok && !reflect.DeepEqual(normalize(c), value) {
		return fmt.Errorf("%s: %v, want %v", at, value, c)
	}
	if enum, ok := schema["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return reflect.DeepEqual(normalize(e), value) }) {
		return fmt.Errorf("%s: %v not in %v", at, value, enum)
	}
	if types, ok := schema["type"].([]any); ok { // OpenAPI 3.1: one of several types
		var errs []error
		for _, t := range types {
			one := maps.Clone(schema)
			one["type"] = t
			err := d.checkSchema(one, value, at)
			if err == nil {
				return nil
			}
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}
	switch schema["type"] {
	case "null":
		if value != nil {
			return fmt.Errorf("%s: %v is not null", at, value)
		}
	case "object":
		obj, ok := value.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: %v is not an object", at, value)
		}
		props, _ := schema["properties"].(map[string]any)
		for name, v := range obj {
			p, known := props[name]
			if !known {
				return fmt.Errorf("%s: undocumented member %q", at, name)
			}
			if err := d.checkSchema(p.(map[string]any), v, at+"."+name); err != nil {
				return err
			}
		}
		for _, r := range asList(schema["required"]) {
			if _, ok := obj[r.(string)]; !ok {
				return fmt.Errorf("%s: required member %q missing", at, r)
			}
		}
	case "array":
		list, ok := value.([]any)
		if !ok {
			return fmt.Errorf("%s: %v is not an array", at, value)
		}
		for i, v := range list {
			if err := d.checkSchema(schema["items"].(map[string]any), v, fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	case "integer":
		if f, ok := value.(float64); !ok || f != float64(int64(f)) {
			return fmt.Errorf("%s: %v is not an integer", at, value)
		}
	case "string":
		if _, ok := value.(string); !ok {
			return fmt.Errorf("%s: %v is not a string", at, value)
		}
	}
	return nil
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// normalize makes a YAML value comparable with a decoded JSON one.
func normalize(v any) any {
	data, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(data, &out)
	return out
}

// examples are a response's documented example bodies.
func (d document) examples(content map[string]any) []any {
	var out []any
	if e, ok := content["example"]; ok {
		out = append(out, normalize(e))
	}
	if es, ok := content["examples"].(map[string]any); ok {
		for _, e := range es {
			out = append(out, normalize(e.(map[string]any)["value"]))
		}
	}
	return out
}

// TestOpenAPIDocumentMatchesTheHandler sends every documented case to the handler: each
// answer's status must be documented for its operation, its body must fit the documented
// schema (and equal a documented example where the body is fixed), documented headers must
// be there, and every documented status must be reached by some case.
func TestOpenAPIDocumentMatchesTheHandler(t *testing.T) {
	doc := loadDocument(t)
	responses := doc.responses()
	signer, err := auth.NewSigner("k1")
	if err != nil {
		t.Fatal(err)
	}
	clerk, err := auth.NewAuthenticator(auth.Config{Clerk: &auth.ClerkConfig{JWTKeyPEM: signer.PublicKeyPEM()}, Limits: auth.DefaultLimits()})
	if err != nil {
		t.Fatal(err)
	}
	authz := verbAuthorizer{verbs: map[string][]string{"admin": {"get", "update", "consume", "grant"}}}
	reached := map[string]bool{}
	for _, c := range openAPICases(t, signer) {
		store := &memoryStore{balances: map[string]int64{"user_A": 5}, err: c.storeErr, applyResult: c.result,
			history: []account.Transaction{{Kind: account.OpVoid, Credits: 3, Balance: 10, At: time.Now(), Reference: "lot_0123456789abcdef"},
				{Kind: account.OpExpire, Credits: 0, Balance: 13, At: time.Now(), Reference: "lot_fedcba9876543210"},
				{Kind: account.OpRefund, Credits: 2, Balance: 13, At: time.Now(), Reference: "cs_test_a1", Unrecoverable: 6},
				{Kind: account.KindReinstate, Credits: 4, Balance: 15, At: time.Now(), Reference: "cs_test_a1"},
				{Kind: account.OpDispute, Credits: 4, Balance: 11, At: time.Now(), Reference: "cs_test_a1"},
				{Kind: account.KindPurchase, Credits: 8, Balance: 13, At: time.Now(), Reference: "cs_test_a1"},
				{Kind: account.OpGrant, Credits: 5, Balance: 5, At: time.Now()}},
			grants: []account.GrantView{
				{Lot: account.Lot{ID: "lot_0123456789abcdef", Credits: 50, Remaining: 42, ExpiresAt: time.Now().Add(time.Hour), Priority: 10,
					Source: account.SourceAPI, Reason: "launch promotion", GrantedAt: time.Now()}, Held: 1},
				{Lot: account.Lot{ID: "lot_fedcba9876543210", Credits: 8, Remaining: 8, Priority: 50, Source: account.SourceStripe,
					Reference: "cs_test_a1", GrantedAt: time.Now()}},
				{Lot: account.Lot{ID: account.BalanceLotID, Credits: 1, Remaining: 5, Priority: 50, Source: account.SourceSet, GrantedAt: time.Now()}},
			}}
		settings := testSettings(func(s *Settings) { s.AllowUserWrites, s.UserRateLimit = c.userWrites, c.rateLimit })
		opts := Options{Settings: settings, Verifier: serviceVerifier{clerk}, Authorizer: authz, Store: store, Log: logr.Discard()}
		if c.stripe {
			opts.StripeWebhook = &payments.Webhook{Settings: payments.Settings{WebhookSecret: whsec, PricePerCreditCents: 125, CheckoutCurrency: "usd"}, Store: store, Log: logr.Discard()}
		}
		h := mustHandler(t, opts)
		rec := serveTimes(h, c.repeat+1, c.method, c.path, c.body, c.header)
		name := fmt.Sprintf("%s %s → %d", c.method, c.path[:min(len(c.path), 60)], c.status)
		if rec.Code != c.status {
			t.Errorf("%s: answered %d %s", name, rec.Code, rec.Body)
			continue
		}
		if c.wantBody != "" && rec.Body.String() != c.wantBody {
			t.Errorf("%s: answered %s, want %s", name, rec.Body, c.wantBody)
		}
		path := pattern(strings.SplitN(c.path, "?", 2)[0])
		keys := []string{c.method + " " + path}
		if rec.Code == 405 {
			// Another method: every operation of the path must document it, and Allow
			// must list exactly the path's documented methods.
			methods := doc.methods(path)
			if slices.Contains(methods, c.method) {
				t.Errorf("%s: 405 for a documented method", name)
			}
			if allow := rec.Header().Get("Allow"); allow != strings.Join(methods, ", ") {
				t.Errorf("%s: Allow %q, want the documented methods %q", name, allow, strings.Join(methods, ", "))
			}
			keys = keys[:0]
			for _, m := range methods {
				keys = append(keys, m+" "+path)
			}
		}
		for _, key := range keys {
			if doc.checkAnswer(t, name, key, responses, rec) {
				reached[key+" "+fmt.Sprint(rec.Code)] = true
			}
		}
	}
	for key, statuses := range responses {
		for status := range statuses {
			if !reached[key+" "+status] {
				t.Errorf("documented %s %s is not reached by any case", key, status)
			}
		}
	}
}

// methods are the documented methods of path, upper-case and sorted.
func (d document) methods(path string) []string {
	item, _ := d.root["paths"].(map[string]any)[path].(map[string]any)
	var out []string
	for m := range item {
		out = append(out, strings.ToUpper(m))
	}
	slices.Sort(out)
	return out
}

// checkAnswer checks rec against what the document says operation key answers with its
// status: the status is documented, the body fits the schema (and is a documented
// example, where the body is fixed), and documented headers are there. It reports whether
// the status is documented.
func (d document) checkAnswer(t *testing.T, name, key string, responses map[string]map[string]map[string]any, rec *httptest.ResponseRecorder) bool {
	t.Helper()
	ops, ok := responses[key]
	if !ok {
		t.Errorf("%s: %s is not documented", name, key)
		return false
	}
	resp, ok := ops[fmt.Sprint(rec.Code)]
	if !ok {
		t.Errorf("%s: status %d is not documented for %s", name, rec.Code, key)
		return false
	}
	content := d.deref(resp["content"].(map[string]any)["application/json"])
	var body any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Errorf("%s: body %q is not JSON", name, rec.Body)
		return true
	}
	if err := d.checkSchema(content["schema"].(map[string]any), body, "body"); err != nil {
		t.Errorf("%s: %s does not fit the documented schema of %s: %v", name, rec.Body, key, err)
	}
	if examples := d.examples(content); rec.Code >= 400 && rec.Code != 402 && !slices.ContainsFunc(examples, func(e any) bool { return reflect.DeepEqual(e, body) }) {
		t.Errorf("%s: %s is none of the documented bodies of %s %d: %v", name, rec.Body, key, rec.Code, examples)
	}
	headers, _ := resp["headers"].(map[string]any)
	for header, spec := range headers {
		if header == "Idempotent-Replayed" {
			continue // only on a replay
		}
		value := rec.Header().Get(header)
		if value == "" {
			t.Errorf("%s: documented header %s missing", name, header)
			continue
		}
		if schema, ok := d.deref(spec)["schema"].(map[string]any); ok && schema["type"] == "string" {
			if err := d.checkSchema(schema, value, header); err != nil {
				t.Errorf("%s: header %v", name, err)
			}
		}
	}
	return true
}
