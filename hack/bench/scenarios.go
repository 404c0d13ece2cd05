package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/controllers"
	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/auth"
	"github.com/gitread/usercredits-operator/test/framework"
)

func userID(prefix string, i int) string { return fmt.Sprintf("user_%s_%06d", prefix, i) }

// seeding says what each seeded user holds.
type seeding struct {
	balance   int64
	grantKeys int  // applied grant keys, as checkouts leave them
	history   bool // a full transaction history (110 entries, the most the ring keeps)
	lots      int  // the balance split into this many lots, of mixed priority and expiry
}

// seed creates n validated UserCredits (status included, as a running controller leaves
// them) as spec says, with concurrency writers, and returns how long it took.
func seed(ctx context.Context, c client.Client, namespace, prefix string, n, concurrency int, spec seeding) (time.Duration, error) {
	var firstErr atomic.Value
	now := time.Now()
	sum := Do(ctx, "seed", n, concurrency, func(ctx context.Context, i int) int {
		if err := seedOne(ctx, c, seededObject(namespace, userID(prefix, i), spec, now)); err != nil {
			firstErr.CompareAndSwap(nil, err)
			return -1
		}
		return 200
	}, ok200)
	if err, _ := firstErr.Load().(error); err != nil {
		return sum.Duration, fmt.Errorf("%d of %d objects failed, first: %w", sum.Errors, n, err)
	}
	return sum.Duration, nil
}

// seededObject is user's UserCredits as spec says, without its status; as the API creates
// them: under the derived name, labelled so (account.NameLabel).
func seededObject(namespace, user string, spec seeding, now time.Time) *creditsv1alpha1.UserCredits {
	annotations := map[string]string{}
	if ledger := grantLedger(user, spec.grantKeys, now); ledger != "" {
		annotations[account.AppliedGrantsAnnotation] = ledger
	}
	if spec.history {
		fullHistory(annotations, spec.balance, now)
	}
	if len(annotations) == 0 {
		annotations = nil
	}
	return &creditsv1alpha1.UserCredits{
		ObjectMeta: metav1.ObjectMeta{Name: account.ObjectNameForUser(user), Namespace: namespace, Annotations: annotations,
			Labels: map[string]string{account.NameLabel: account.NameDerived}},
		Spec: creditsv1alpha1.UserCreditsSpec{UserID: user, Credits: spec.balance, Lots: seededLots(spec, now)},
	}
}

// judged is obj (new, generation 1) with the status the controller gives it at now.
func judged(obj *creditsv1alpha1.UserCredits, now time.Time) *creditsv1alpha1.UserCredits {
	obj.Generation = 1
	obj.Status = controllers.Validate(obj, nil, metav1.NewTime(now), 0, controllers.Record{}).Status
	return obj
}

// seedOne creates obj through the apiserver, then writes its status as the controller would.
func seedOne(ctx context.Context, c client.Client, obj *creditsv1alpha1.UserCredits) error {
	if err := c.Create(ctx, obj); err != nil {
		return err
	}
	base := obj.DeepCopy()
	obj.Status = controllers.Validate(obj, nil, metav1.Now(), 0, controllers.Record{}).Status
	return c.Status().Patch(ctx, obj, client.MergeFrom(base))
}

// seededLots splits spec.balance into spec.lots lots as grants leave them: priorities and
// expiries differ (so spending order matters), none expires during the run, and the
// last lot takes the remainder so that the lots add up to the balance (the CRD checks it).
func seededLots(spec seeding, now time.Time) []creditsv1alpha1.Lot {
	if spec.lots == 0 {
		return nil
	}
	lots := make([]creditsv1alpha1.Lot, spec.lots)
	each := spec.balance / int64(spec.lots)
	for i := range lots {
		credits := each
		if i == len(lots)-1 {
			credits = spec.balance - each*int64(spec.lots-1)
		}
		expires := metav1.NewTime(now.Add(time.Duration(30+i) * 24 * time.Hour).Truncate(time.Second))
		lots[i] = creditsv1alpha1.Lot{ID: fmt.Sprintf("lot_seed%02d", i), Credits: credits, Remaining: credits,
			ExpiresAt: &expires, Priority: int32(10 * (i % 5)), Source: "api", GrantedAt: metav1.NewTime(now.Truncate(time.Second))}
	}
	return lots
}

// seedGrantKey is the Idempotency-Key of user's i-th seeded grant, as a checkout session ID.
func seedGrantKey(user string, i int) string { return fmt.Sprintf("cs_live_%s_%d", user, i) }

// seedGrantAmount is what every seeded grant granted.
const seedGrantAmount = 100

// grantLedger is the applied-grants annotation n keyed grants leave behind, in the
// format internal/credits writes (the scale run checks that a seeded key is replayed, so
// a drift in that format fails the benchmark instead of measuring records nobody reads):
// per grant, 96 bits of the key's SHA-256 in base64url, "g" and the amount, the result
// (empty: the previous one plus the amount), the time (the first whole, then differences).
func grantLedger(user string, n int, at time.Time) string {
	if n == 0 {
		return ""
	}
	entries := make([]string, n)
	for i := range entries {
		sum := sha256.Sum256([]byte(seedGrantKey(user, i)))
		dt := int64(0)
		if i == 0 {
			dt = at.Unix()
		}
		entries[i] = fmt.Sprintf("%sg%d,,%d", base64.RawURLEncoding.EncodeToString(sum[:12]), seedGrantAmount, dt)
	}
	return strings.Join(entries, ";")
}

// historyEntries is what a full history holds: the ring of 11 chunks of 10.
const historyEntries = 110

// fullHistory adds to annotations a transaction history of historyEntries grants and
// consumes ending at balance, in the format internal/credits writes (the scale run reads
// one back through the API, so a drift in that format fails the benchmark): the first
// entry of a chunk whole, the others against it (the balance and time as differences).
func fullHistory(annotations map[string]string, balance int64, now time.Time) {
	// Every user seeded at once has the same history: made once, copied (a million users
	// are seeded in minutes).
	key := historyKey{balance, now.UnixNano()}
	h, ok := histories.Load(key)
	if !ok {
		h, _ = histories.LoadOrStore(key, makeHistory(balance, now))
	}
	maps.Copy(annotations, h.(map[string]string))
}

// historyKey is what a seeded history depends on.
type historyKey struct{ balance, now int64 }

// histories are the seeded histories made so far, by historyKey.
var histories sync.Map

func makeHistory(balance int64, now time.Time) map[string]string {
	annotations := map[string]string{}
	chunks := make([][]string, 11)
	var first time.Time
	for i := range historyEntries {
		kind, n := "c", int64(1)
		if i%4 == 0 {
			kind, n = "g", 10
		}
		at := now.Add(time.Duration(i-historyEntries) * time.Minute)
		entry := fmt.Sprintf("%s%d,0,%d", kind, n, at.Unix()-first.Unix())
		if i%10 == 0 {
			first, entry = at, fmt.Sprintf("%s,%d,%d,%d", kind, n, balance, at.Unix())
		}
		chunks[(i/10)%11] = append(chunks[(i/10)%11], entry)
	}
	for k, entries := range chunks {
		annotations[account.HistoryChunkAnnotation(k)] = strings.Join(entries, ";")
	}
	annotations[account.HistorySeqAnnotation] = fmt.Sprint(historyEntries)
	return annotations
}

// tokens signs session tokens for users prefix_0 … prefix_{n-1}.
func tokens(signer *auth.Signer, prefix string, n int) ([]string, error) {
	out := make([]string, n)
	for i := range out {
		tok, err := signer.SessionToken(userID(prefix, i), 2*time.Hour)
		if err != nil {
			return nil, err
		}
		out[i] = tok
	}
	return out, nil
}

// getRequests are the bytes of one GET /api/credits per token: the same bytes go to the
// operator and to the bare handler.
func getRequests(toks []string) [][]byte {
	out := make([][]byte, len(toks))
	for i, tok := range toks {
		out[i] = rawRequest("GET", "/api/credits", tok, "")
	}
	return out
}

// setRequests are n POSTs of a new balance for user i%len(toks), distinct each time so
// every request writes.
func setRequests(toks []string, n, offset int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = rawRequest("POST", "/api/credits", toks[i%len(toks)], fmt.Sprintf(`{"credits":%d}`, offset+i+1))
	}
	return out
}

// consumeRequests are consumes of 1, one per token in turn.
func consumeRequests(toks []string) [][]byte {
	out := make([][]byte, len(toks))
	for i, tok := range toks {
		out[i] = rawRequest("POST", "/api/credits/consume", tok, "")
	}
	return out
}

// rawPatches is the reference for writes: the same balance changes as client-go merge
// patches straight to the apiserver, with the same concurrency.
func rawPatches(ctx context.Context, c client.Client, namespace, prefix string, users, n, concurrency, offset int) Summary {
	return Do(ctx, "client-go merge patch (raw)", n, concurrency, func(ctx context.Context, i int) int {
		obj := &creditsv1alpha1.UserCredits{ObjectMeta: metav1.ObjectMeta{
			Name: account.ObjectNameForUser(userID(prefix, i%users)), Namespace: namespace}}
		patch := client.RawPatch("application/merge-patch+json", fmt.Appendf(nil, `{"spec":{"credits":%d}}`, offset+i+1))
		if err := c.Patch(ctx, obj, patch); err != nil {
			return -1
		}
		return 200
	}, ok200)
}

func ok200(status int) bool { return status == 200 }

// consumeBurst sends n concurrent consumes of 1 for one user at once, spread over addrs.
func consumeBurst(name string, addrs []string, token string, n int) Summary {
	req := rawRequest("POST", "/api/credits/consume", token, "")
	if len(addrs) == 1 {
		return leanRun(name, addrs[0], [][]byte{req}, n, n, ok200)
	}
	parts := make([]Summary, len(addrs))
	var wg sync.WaitGroup
	start := time.Now()
	for i, addr := range addrs {
		wg.Go(func() { parts[i] = leanRun(name, addr, [][]byte{req}, n/len(addrs), n/len(addrs), ok200) })
	}
	wg.Wait()
	return merge(name, parts, time.Since(start))
}

// merge sums runs that went on at the same time into one.
func merge(name string, parts []Summary, wall time.Duration) Summary {
	var latencies []time.Duration
	var statuses []int
	for _, p := range parts {
		latencies = append(latencies, p.Latencies...)
		for status, n := range p.Statuses {
			for range n {
				statuses = append(statuses, status)
			}
		}
	}
	return Summarize(name, latencies, statuses, wall, ok200)
}

// holdRoundTrips runs n reserve-then-capture round trips over users, concurrency at a time;
// a round trip counts as one operation.
func holdRoundTrips(ctx context.Context, addr string, toks []string, n, concurrency int) Summary {
	client := NewClient(concurrency)
	return Do(ctx, "reserve + capture round trips", n, concurrency, func(ctx context.Context, i int) int {
		tok := toks[i%len(toks)]
		status, body := post(ctx, client, "http://"+addr+"/api/credits/reserve", tok, `{"credits":1}`)
		if status != 200 {
			return status
		}
		var r struct {
			ReservationID string `json:"reservationId"`
		}
		_ = json.Unmarshal(body, &r)
		status, _ = post(ctx, client, "http://"+addr+"/api/credits/reservations/"+r.ReservationID+"/capture", tok, "")
		return status
	}, ok200)
}

func post(ctx context.Context, client *http.Client, url, token, body string) (int, []byte) {
	req, err := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
	if err != nil {
		return -1, nil
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return -1, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// readsFullHistory reads user's history through the operator at addr and reports whether
// it holds the last 100 entries.
func readsFullHistory(addr, token string) (bool, error) {
	status, body := get(context.Background(), "http://"+addr+"/api/credits/transactions", token)
	var h struct {
		Transactions []json.RawMessage `json:"transactions"`
	}
	if err := json.Unmarshal(body, &h); err != nil {
		return false, fmt.Errorf("history: %d %s", status, body)
	}
	fmt.Printf("  history read back: %d entries\n", len(h.Transactions))
	return status == 200 && len(h.Transactions) == account.HistoryLength, nil
}

func get(ctx context.Context, url, token string) (int, []byte) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return -1, nil
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// replaysSeededGrant retries one of user's seeded grants through the operator at addr, as
// a ServiceAccount allowed to grant, and reports whether it was answered as a replay.
func replaysSeededGrant(ctx context.Context, cfg *rest.Config, addr, namespace, user string) (bool, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return false, err
	}
	const name = "bench-granter"
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{creditsv1alpha1.GroupVersion.Group}, Resources: []string{"usercredits"}, Verbs: []string{"grant"}}}}
	if _, err := cs.RbacV1().Roles(namespace).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		return false, err
	}
	if err := framework.BindServiceAccount(ctx, cs, namespace, name, rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name}); err != nil {
		return false, err
	}
	token, err := framework.ServiceAccountToken(ctx, cs, namespace, name, auth.DefaultServiceAccountAudience)
	if err != nil {
		return false, err
	}
	req, err := http.NewRequest("POST", "http://"+addr+"/api/credits/grant?userId="+user, strings.NewReader(fmt.Sprintf(`{"credits":%d}`, seedGrantAmount)))
	if err != nil {
		return false, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Idempotency-Key", seedGrantKey(user, 0))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Printf("  retried seeded grant: %d %s (Idempotent-Replayed: %q)\n", resp.StatusCode, body, resp.Header.Get("Idempotent-Replayed"))
	return resp.StatusCode == 200 && resp.Header.Get("Idempotent-Replayed") == "true", nil
}

// twoReplicaRun sends n requests split over the replicas at addrs at once.
func twoReplicaRun(name string, addrs []string, reqs [][]byte, n, concurrency int) Summary {
	parts := make([]Summary, len(addrs))
	var wg sync.WaitGroup
	start := time.Now()
	for i, addr := range addrs {
		wg.Go(func() { parts[i] = leanRun(name, addr, reqs, n/len(addrs), concurrency, ok200) })
	}
	wg.Wait()
	return merge(name, parts, time.Since(start))
}

// setBalance sets user's balance straight at the apiserver.
func setBalance(ctx context.Context, c client.Client, namespace, user string, balance int64) error {
	obj := &creditsv1alpha1.UserCredits{ObjectMeta: metav1.ObjectMeta{Name: account.ObjectNameForUser(user), Namespace: namespace}}
	return c.Patch(ctx, obj, client.RawPatch("application/merge-patch+json", fmt.Appendf(nil, `{"spec":{"credits":%d}}`, balance)))
}

// exactBurst reports whether a burst of consumes of 1 on a balance of as many credits all
// succeeded and left exactly 0.
func exactBurst(ctx context.Context, c client.Client, namespace, user string, s Summary) bool {
	obj := &creditsv1alpha1.UserCredits{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: account.ObjectNameForUser(user)}, obj); err != nil {
		return false
	}
	exact := s.Statuses[200] == s.Requests && obj.Spec.Credits == 0
	fmt.Printf("  exact: %v (%d × 200, balance left %d)\n", exact, s.Statuses[200], obj.Spec.Credits)
	return exact
}
