package operator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/metrics"
	"github.com/gitread/usercredits-operator/test/framework"
)

// reserved is a reserve's answer.
type reserved struct {
	Success       bool   `json:"success"`
	ReservationID string `json:"reservationId"`
	Credits       int64  `json:"credits"`
}

func reserveAs(t *testing.T, base, token, query, body string, header ...string) (int, reserved, string) {
	t.Helper()
	status, got := request(t, "POST", base+"/api/credits/reserve"+query, token, body, header...)
	var r reserved
	if status == 200 {
		if err := json.Unmarshal([]byte(got), &r); err != nil || !r.Success || !strings.HasPrefix(r.ReservationID, "rsv_") {
			t.Fatalf("reserve answer %s: %v", got, err)
		}
		if want := fmt.Sprintf(`{"success":true,"reservationId":%q,"credits":%d}`, r.ReservationID, r.Credits); got != want {
			t.Fatalf("reserve answer %s, want exactly %s", got, want)
		}
	}
	return status, r, got
}

func holdURL(id, action string) string {
	return apiBase + "/api/credits/reservations/" + id + "/" + action
}

// TestReservationsThroughTheAPI walks every row of the reservation contract as a Clerk user.
func TestReservationsThroughTheAPI(t *testing.T) {
	user := "user_Holds1"
	tok := tokenFor(t, user)
	expectCall(t, "seed", "POST", tok, `{"credits":10}`, 200, `{"success":true,"credits":10}`)

	status, a, _ := reserveAs(t, apiBase, tok, "", `{"credits":4,"ttlSeconds":600}`)
	if status != 200 || a.Credits != 6 {
		t.Fatalf("reserve 4: %d %+v", status, a)
	}
	expectCall(t, "GET answers the available balance", "GET", tok, "", 200, `{"credits":6}`)
	if status, body := request(t, "POST", apiBase+"/api/credits/reserve", tok, `{"credits":7}`); status != 402 || body != `{"error":"Insufficient credits","credits":6}` {
		t.Fatalf("reserve beyond available: %d %s", status, body)
	}
	status, b, _ := reserveAs(t, apiBase, tok, "", "") // defaults: 1 credit, --reservation-ttl
	if status != 200 || b.Credits != 5 {
		t.Fatalf("reserve with defaults: %d %+v", status, b)
	}

	steps := []struct {
		name, method, url, body string
		status                  int
		want                    string
		replayed                bool
	}{
		{"capture with a misspelt member", "POST", holdURL(a.ReservationID, "capture"), `{"credit":1}`, 400, `{"error":"Invalid credits value"}`, false},
		{"reserve with a misspelt member", "POST", apiBase + "/api/credits/reserve", `{"Credits":5}`, 400, `{"error":"Invalid credits value"}`, false},
		{"capture 3 of 4", "POST", holdURL(a.ReservationID, "capture"), `{"credits":3}`, 200, `{"success":true,"credits":6}`, false},
		{"capture again, same body", "POST", holdURL(a.ReservationID, "capture"), `{"credits":3}`, 200, `{"success":true,"credits":6}`, true},
		{"capture again, other body", "POST", holdURL(a.ReservationID, "capture"), `{"credits":4}`, 409, `{"error":"Reservation already captured"}`, false},
		{"release after capture", "POST", holdURL(a.ReservationID, "release"), "", 409, `{"error":"Reservation already captured"}`, false},
		{"release", "POST", holdURL(b.ReservationID, "release"), "", 200, `{"success":true,"credits":7}`, false},
		{"release again", "POST", holdURL(b.ReservationID, "release"), "", 200, `{"success":true,"credits":7}`, true},
		{"capture after release", "POST", holdURL(b.ReservationID, "capture"), "", 409, `{"error":"Reservation already released"}`, false},
		{"unknown hold", "POST", holdURL("rsv_0000000000000000", "capture"), "", 404, `{"error":"Reservation not found"}`, false},
		{"malformed hold ID", "POST", apiBase + "/api/credits/reservations/no%20such/capture", "", 404, `{"error":"Reservation not found"}`, false},
		{"release with a body it does not read", "POST", holdURL(b.ReservationID, "release"), `{"credits":1}`, 400, `{"error":"Invalid credits value"}`, false},
		{"GET on capture", "GET", holdURL(a.ReservationID, "capture"), "", 405, `{"error":"Method not allowed"}`, false},
		{"bad ttlSeconds", "POST", apiBase + "/api/credits/reserve", `{"ttlSeconds":0}`, 400, `{"error":"Invalid ttlSeconds"}`, false},
		{"ttlSeconds over a day", "POST", apiBase + "/api/credits/reserve", `{"ttlSeconds":86401}`, 400, `{"error":"Invalid ttlSeconds"}`, false},
		{"reserve 0", "POST", apiBase + "/api/credits/reserve", `{"credits":0}`, 400, `{"error":"Invalid credits value"}`, false},
	}
	for _, s := range steps {
		r := doRequest(t, s.method, s.url, tok, s.body)
		if r.status != s.status || r.body != s.want || (r.header.Get("Idempotent-Replayed") == "true") != s.replayed {
			t.Fatalf("%s: %d %s (replayed %q); want %d %s replayed=%v", s.name, r.status, r.body, r.header.Get("Idempotent-Replayed"), s.status, s.want, s.replayed)
		}
	}
	if status, body := request(t, "POST", apiBase+"/api/credits/reservations/no%20such/capture", "", ""); status != 401 || body != `{"error":"Unauthorized"}` {
		t.Fatalf("malformed hold ID without a token: %d %s, want 401 (authentication comes first)", status, body)
	}
	// Another user cannot see, capture or release this user's holds.
	_, hold, _ := reserveAs(t, apiBase, tok, "", `{"credits":1}`)
	other := tokenFor(t, "user_Holds2")
	for _, action := range []string{"capture", "release"} {
		if status, body := request(t, "POST", holdURL(hold.ReservationID, action), other, ""); status != 404 || body != `{"error":"Reservation not found"}` {
			t.Fatalf("another user's %s: %d %s", action, status, body)
		}
	}
	// An Idempotency-Key on reserve replays the same hold.
	_, k1, _ := reserveAs(t, apiBase, tok, "", `{"credits":1}`, "Idempotency-Key", "gen-42")
	r := doRequest(t, "POST", apiBase+"/api/credits/reserve", tok, `{"credits":1}`, "Idempotency-Key", "gen-42")
	if r.status != 200 || !strings.Contains(r.body, k1.ReservationID) || r.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("keyed reserve retried: %d %s %q", r.status, r.body, r.header.Get("Idempotent-Replayed"))
	}
	// So does one on capture and release (pkg/client sends one, and retries with it).
	for action, body := range map[string]string{"capture": `{"credits":1}`, "release": ""} {
		_, hold, _ := reserveAs(t, apiBase, tok, "", `{"credits":2}`)
		key := "gen-43-" + action
		first := doRequest(t, "POST", holdURL(hold.ReservationID, action), tok, body, "Idempotency-Key", key)
		again := doRequest(t, "POST", holdURL(hold.ReservationID, action), tok, body, "Idempotency-Key", key)
		if first.status != 200 || again.status != 200 || again.body != first.body || again.header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("keyed %s retried: first %d %s, then %d %s (replayed %q)", action, first.status, first.body, again.status, again.body, again.header.Get("Idempotent-Replayed"))
		}
	}
}

// TestReservationsAsAServiceAccount: the consume verb is all a worker needs; get alone is not.
func TestReservationsAsAServiceAccount(t *testing.T) {
	user := "user_Holds3"
	worker := serviceAccountToken(t, "hold-worker", "credits-consumer")
	viewer := serviceAccountToken(t, "hold-viewer", "credits-viewer")
	admin := serviceAccountToken(t, "hold-admin", "credits-admin")
	request(t, "POST", creditsURL(apiBase, "/api/credits", user), admin, `{"credits":5}`)
	q := "?userId=" + user
	if status, _, body := reserveAs(t, apiBase, viewer, q, ""); status != 403 {
		t.Fatalf("viewer reserves: %d %s", status, body)
	}
	status, h, body := reserveAs(t, apiBase, worker, q, `{"credits":2}`)
	if status != 200 || h.Credits != 3 {
		t.Fatalf("worker reserves: %d %s", status, body)
	}
	if status, body := request(t, "POST", holdURL(h.ReservationID, "capture")+q, worker, `{"credits":1}`); status != 200 || body != `{"success":true,"credits":4}` {
		t.Fatalf("worker captures: %d %s", status, body)
	}
	if status, body := request(t, "POST", holdURL(h.ReservationID, "capture"), worker, `{"credits":1}`); status != 400 || body != `{"error":"Missing userId"}` {
		t.Fatalf("worker without userId: %d %s", status, body)
	}
}

// TestExpiredHoldsReturnByThemselves: a hold whose time is up goes back to the balance within
// 5 s of expiry, with a Normal Event; capture and release then answer 410.
func TestExpiredHoldsReturnByThemselves(t *testing.T) {
	ctx := context.Background()
	user := "user_Expiry1"
	tok := tokenFor(t, user)
	expectCall(t, "seed", "POST", tok, `{"credits":5}`, 200, `{"success":true,"credits":5}`)
	status, h, _ := reserveAs(t, apiBase, tok, "", `{"credits":2,"ttlSeconds":1}`)
	if status != 200 {
		t.Fatalf("reserve: %d", status)
	}
	expiresAt := statusOf(t, user).Spec.Reservations[0].ExpiresAt.Time
	if expiresAt.Before(time.Now().Add(-time.Second)) {
		t.Fatalf("the hold expires at %v, before its 1s were up", expiresAt)
	}
	framework.Eventually(t, 10*time.Second, func() error {
		if _, body := call(t, "GET", tok, ""); body != `{"credits":5}` {
			return fmt.Errorf("GET = %s", body)
		}
		return nil
	})
	late := time.Since(expiresAt)
	if late > 5*time.Second {
		t.Fatalf("the hold came back %v after its expiry, bound is 5s", late)
	}
	t.Logf("the hold came back %v after its expiry", late.Round(time.Millisecond))
	for _, action := range []string{"capture", "release"} {
		if status, body := request(t, "POST", holdURL(h.ReservationID, action), tok, ""); status != 410 || body != `{"error":"Reservation expired"}` {
			t.Fatalf("%s after expiry: %d %s", action, status, body)
		}
	}
	framework.Eventually(t, 10*time.Second, func() error {
		var list eventsv1.EventList
		if err := k8sClient.List(ctx, &list, client.InNamespace(testNamespace)); err != nil {
			return err
		}
		for _, e := range list.Items {
			if e.Regarding.Name == account.ObjectNameForUser(user) && e.Reason == "ReservationExpired" && e.Type == "Normal" {
				return nil
			}
		}
		return fmt.Errorf("no ReservationExpired Event")
	})
}

func statusOf(t *testing.T, user string) *creditsv1alpha1.UserCredits {
	t.Helper()
	obj := &creditsv1alpha1.UserCredits{}
	if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: testNamespace, Name: account.ObjectNameForUser(user)}, obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

// TestTooManyOpenHolds: the 101st open hold of a user is refused.
func TestTooManyOpenHolds(t *testing.T) {
	user := "user_ManyHolds1"
	tok := tokenFor(t, user)
	expectCall(t, "seed", "POST", tok, `{"credits":1000}`, 200, `{"success":true,"credits":1000}`)
	for i := range creditsv1alpha1.MaxOpenReservations {
		if status, _, body := reserveAs(t, apiBase, tok, "", ""); status != 200 {
			t.Fatalf("hold %d: %d %s", i, status, body)
		}
	}
	if status, body := request(t, "POST", apiBase+"/api/credits/reserve", tok, ""); status != 409 || body != `{"error":"Too many open reservations"}` {
		t.Fatalf("hold 101: %d %s", status, body)
	}
	expectCall(t, "balance", "GET", tok, "", 200, `{"credits":900}`)
}

// TestConcurrentReservesAcrossTwoReplicas: 50 concurrent holds of 1 on 7 available credits
// over two replicas: exactly 7 succeed.
func TestConcurrentReservesAcrossTwoReplicas(t *testing.T) {
	user := "user_HoldRace1"
	bases, token := seedOnTwoReplicas(t, "hold-racer", user, 7)
	statuses := make([]int, 50)
	var wg sync.WaitGroup
	for i := range statuses {
		wg.Go(func() {
			statuses[i], _ = request(t, "POST", creditsURL(bases[i%2], "/api/credits/reserve", user), token, "")
		})
	}
	wg.Wait()
	counts := map[int]int{}
	for _, s := range statuses {
		counts[s]++
	}
	if counts[200] != 7 || counts[402] != 43 {
		t.Fatalf("statuses %v, want exactly 7×200 and 43×402", counts)
	}
	obj := statusOf(t, user)
	held := int64(0)
	for _, h := range obj.Spec.Reservations {
		held += h.Credits
	}
	if obj.Spec.Credits != 0 || len(obj.Spec.Reservations) != 7 || held != 7 {
		t.Fatalf("stored: %d available, %d holds", obj.Spec.Credits, len(obj.Spec.Reservations))
	}
}

// TestLowBalanceCrossings: the LowBalance condition follows the available balance, Events
// come only on crossings (even with two controllers), and the gauge counts the user.
func TestLowBalanceCrossings(t *testing.T) {
	ctx := context.Background()
	extraReplica(t) // a second controller, and the gauge counted from a live index
	user := "user_Low1"
	tok := tokenFor(t, user)
	expectCall(t, "seed", "POST", tok, `{"credits":10}`, 200, `{"success":true,"credits":10}`)
	obj := &creditsv1alpha1.UserCredits{ObjectMeta: metav1.ObjectMeta{Name: account.ObjectNameForUser(user), Namespace: testNamespace}}
	if err := k8sClient.Patch(ctx, obj, client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"lowBalanceThreshold":3}}`))); err != nil {
		t.Fatal(err)
	}
	waitLow := func(want metav1.ConditionStatus, credits int64) {
		t.Helper()
		framework.Eventually(t, 10*time.Second, func() error {
			o := statusOf(t, user)
			c := meta.FindStatusCondition(o.Status.Conditions, creditsv1alpha1.ConditionLowBalance)
			if c == nil || c.Status != want || o.Status.Credits != credits {
				return fmt.Errorf("at %d credits LowBalance is %+v, want %s at %d", o.Status.Credits, c, want, credits)
			}
			return nil
		})
	}
	waitLow(metav1.ConditionFalse, 10)
	steps := []struct {
		path, body string
		credits    int64
		low        metav1.ConditionStatus
	}{
		{"/api/credits/consume", `{"credits":6}`, 4, metav1.ConditionFalse}, // still above
		{"/api/credits/consume", `{"credits":1}`, 3, metav1.ConditionTrue},  // crossing down
		{"/api/credits/consume", `{"credits":1}`, 2, metav1.ConditionTrue},  // staying low: no Event
		{"/api/credits/reserve", `{"credits":1}`, 1, metav1.ConditionTrue},  // a hold counts: available is what matters
	}
	for _, s := range steps {
		if status, body := request(t, "POST", apiBase+s.path, tok, s.body); status != 200 {
			t.Fatalf("%s %s: %d %s", s.path, s.body, status, body)
		}
		waitLow(s.low, s.credits)
	}
	if n := testutil.ToFloat64(metrics.LowBalanceUsers); n != 1 {
		t.Errorf("usercredits_low_balance_users = %v, want 1", n)
	}
	expectCall(t, "restore", "POST", tok, `{"credits":20}`, 200, `{"success":true,"credits":20}`) // crossing up
	waitLow(metav1.ConditionFalse, 20)
	framework.Eventually(t, 10*time.Second, func() error {
		if low, restored := events(t, user, "LowBalance"), events(t, user, "BalanceRestored"); low != 1 || restored != 1 {
			return fmt.Errorf("%d LowBalance and %d BalanceRestored Events, want exactly 1 each", low, restored)
		}
		return nil
	})
	if n := testutil.ToFloat64(metrics.LowBalanceUsers); n != 0 {
		t.Errorf("usercredits_low_balance_users = %v after the balance was restored, want 0", n)
	}
}

// events counts the Events of a reason about user's object.
func events(t *testing.T, user, reason string) int {
	t.Helper()
	var list eventsv1.EventList
	if err := k8sClient.List(context.Background(), &list, client.InNamespace(testNamespace)); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range list.Items {
		if e.Regarding.Name == account.ObjectNameForUser(user) && e.Reason == reason {
			n++
		}
	}
	return n
}

// history is GET /api/credits/transactions's answer.
type history struct {
	Transactions []struct {
		Type    string `json:"type"`
		Credits int64  `json:"credits"`
		Balance int64  `json:"balance"`
		At      string `json:"at"`
	} `json:"transactions"`
}

func readHistory(t *testing.T, url, token string) (int, history) {
	t.Helper()
	status, body := request(t, "GET", url, token, "")
	var h history
	if status == 200 {
		if err := json.Unmarshal([]byte(body), &h); err != nil || h.Transactions == nil {
			t.Fatalf("history %s: %v", body, err)
		}
	}
	return status, h
}

// TestTransactionHistory: newest first, every kind, the last 100, and who may read it.
func TestTransactionHistory(t *testing.T) {
	user := "user_History1"
	tok := tokenFor(t, user)
	admin := serviceAccountToken(t, "history-admin", "credits-admin")
	expectCall(t, "set", "POST", tok, `{"credits":10}`, 200, `{"success":true,"credits":10}`)
	request(t, "POST", apiURL+"/consume", tok, `{"credits":2}`)
	_, h1, _ := reserveAs(t, apiBase, tok, "", `{"credits":3}`)
	request(t, "POST", holdURL(h1.ReservationID, "capture"), tok, `{"credits":1}`)
	_, h2, _ := reserveAs(t, apiBase, tok, "", `{"credits":1}`)
	request(t, "POST", holdURL(h2.ReservationID, "release"), tok, "")
	request(t, "POST", creditsURL(apiBase, "/api/credits/grant", user), admin, `{"credits":5}`, "Idempotency-Key", "history-grant")

	url := apiBase + "/api/credits/transactions"
	status, h := readHistory(t, url, tok)
	want := []string{"grant 5 → 12", "release 1 → 7", "reserve 1 → 6", "capture 1 → 7", "reserve 3 → 5", "consume 2 → 8", "set 10 → 10"}
	var got []string
	for _, tr := range h.Transactions {
		got = append(got, fmt.Sprintf("%s %d → %d", tr.Type, tr.Credits, tr.Balance))
	}
	if status != 200 || strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Fatalf("history %d:\n got %v\nwant %v", status, got, want)
	}
	var last time.Time
	for i, tr := range h.Transactions {
		at, err := time.Parse(time.RFC3339, tr.At)
		if err != nil || (i > 0 && at.After(last)) || time.Since(at) > time.Minute {
			t.Fatalf("entry %d at %q: not RFC 3339, or not newest first", i, tr.At)
		}
		last = at
	}

	// Who may read it: the user, a ServiceAccount with get; nobody else.
	viewer := serviceAccountToken(t, "history-viewer", "credits-viewer")
	unbound := serviceAccountToken(t, "history-unbound", "")
	if status, hv := readHistory(t, url+"?userId="+user, viewer); status != 200 || len(hv.Transactions) != len(want) {
		t.Fatalf("viewer: %d, %d entries", status, len(hv.Transactions))
	}
	for name, c := range map[string]struct{ url, token string }{
		"unbound ServiceAccount": {url + "?userId=" + user, unbound},
		"another user naming it": {url + "?userId=" + user, tokenFor(t, "user_History2")},
	} {
		if status, _ := request(t, "GET", c.url, c.token, ""); status != 403 {
			t.Errorf("%s: %d, want 403", name, status)
		}
	}
	if status, body := request(t, "GET", url, tokenFor(t, "user_NoHistory"), ""); status != 200 || body != `{"transactions":[]}` {
		t.Fatalf("a user without a record: %d %s", status, body)
	}

	// The last 100 at least, whatever came before.
	expectCall(t, "set 200", "POST", tok, `{"credits":200}`, 200, `{"success":true,"credits":200}`)
	for range 105 {
		if status, body := request(t, "POST", apiURL+"/consume", tok, ""); status != 200 {
			t.Fatalf("consume: %d %s", status, body)
		}
	}
	if _, h := readHistory(t, url, tok); len(h.Transactions) != 100 || h.Transactions[0].Type != "consume" || h.Transactions[0].Balance != 95 {
		t.Fatalf("after 112 changes: %d entries, newest %+v", len(h.Transactions), h.Transactions[0])
	}
}
