package operator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/operator"
	"github.com/gitread/usercredits-operator/test/framework"
)

// chaosSend sends task's copies at once, each to a live replica, each again (same key,
// maybe another replica) until it has an answer: a kill or a 500 leaves the first attempt's
// fate unknown, and the key makes the retry safe.
func chaosSend(t *testing.T, fleet *chaosFleet, admin string, task chaosTask, tally *chaosTally) {
	replicas := make([]*chaosReplica, task.copies)
	for i := range replicas {
		replicas[i] = fleet.pick()
	}
	var wg sync.WaitGroup
	for _, first := range replicas {
		wg.Go(func() {
			r, cut := first, false
			deadline := time.Now().Add(30 * time.Second)
			for {
				status, body, replayed, err := chaosPost(r, task.path, task.req.user, admin, task.req.key, task.body)
				switch {
				case err == nil && status == 200:
					task.req.answered(body, replayed, t)
					if cut {
						tally.interrupted.Add(1)
						if replayed {
							tally.replayedAfterKill.Add(1)
						} else {
							tally.fresh.Add(1)
						}
					}
					return
				case err == nil && status != 500:
					t.Errorf("%s %s: %d %s", task.path, task.req.key, status, body)
					return
				case time.Now().After(deadline):
					t.Errorf("%s %s: no answer within 30 s (last: %d %s %v)", task.path, task.req.key, status, body, err)
					return
				}
				cut = true
				time.Sleep(20 * time.Millisecond)
				r = fleet.pick()
			}
		})
	}
	wg.Wait()
}

// answered records a 200 answer to c.
func (c *chaosKeyed) answered(body string, replayed bool, t *testing.T) {
	var a struct {
		Credits int64 `json:"credits"`
	}
	if err := json.Unmarshal([]byte(body), &a); err != nil || a.Credits < 0 {
		t.Errorf("%s: answer %s", c.key, body)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !replayed {
		c.applied++
	}
	c.bodies = append(c.bodies, body)
}

// lotsWatch follows every stored version of the chaos users' records: the lot invariant
// must hold in each, and it notes when each lot was first seen closed as expired.
type lotsWatch struct {
	mu       sync.Mutex
	versions int
	broken   []string
	expired  map[string]time.Duration // user/lot → seen closed this long after its expiry
}

func watchLots(t *testing.T, ctx context.Context, prefix string) *lotsWatch {
	t.Helper()
	wc, err := client.NewWithWatch(restCfg, client.Options{Scheme: operator.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	w := &lotsWatch{expired: map[string]time.Duration{}}
	go func() {
		for ctx.Err() == nil {
			wi, err := wc.Watch(ctx, &creditsv1alpha1.UserCreditsList{}, client.InNamespace(testNamespace))
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			for ev := range wi.ResultChan() {
				if obj, ok := ev.Object.(*creditsv1alpha1.UserCredits); ok && strings.HasPrefix(obj.Spec.UserID, prefix) {
					w.observe(obj)
				}
			}
			wi.Stop()
		}
	}()
	return w
}

func (w *lotsWatch) observe(obj *creditsv1alpha1.UserCredits) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.versions++
	if err := lotInvariant(obj); err != nil && len(w.broken) < 10 {
		w.broken = append(w.broken, fmt.Sprintf("%s (resourceVersion %s): %v", obj.Spec.UserID, obj.ResourceVersion, err))
	}
	for _, l := range obj.Spec.Lots {
		id := obj.Spec.UserID + "/" + l.ID
		if _, seen := w.expired[id]; !seen && l.Closed == "expired" && l.ExpiresAt != nil {
			w.expired[id] = now.Sub(l.ExpiresAt.Time)
		}
	}
}

// checkChaosBooks: no request applied twice, every answer to a key the same, the books of
// every user closed exactly, every expiring lot removed whole within the bound, and the lot
// invariant in every version the watch saw.
func checkChaosBooks(t *testing.T, grants, consumes []*chaosKeyed, seen *lotsWatch, prefix string) {
	t.Helper()
	want := map[string]int64{}
	twice := 0
	for _, c := range append(append([]*chaosKeyed{}, grants...), consumes...) {
		c.mu.Lock()
		switch {
		case len(c.bodies) == 0:
			t.Errorf("%s never answered 200", c.key)
		case c.applied > 1:
			twice++
			t.Errorf("%s applied %d times (answers %v)", c.key, c.applied, c.bodies)
		case strings.Count(strings.Join(c.bodies, "\n"), c.bodies[0]) != len(c.bodies):
			t.Errorf("%s answered differently: %v", c.key, c.bodies)
		}
		c.mu.Unlock()
		switch {
		case !c.grant:
			want[c.user]--
		case c.expires.IsZero():
			want[c.user] += c.credits
		}
	}
	t.Logf("%d grants and %d consumes, %d applied twice by their answers", len(grants), len(consumes), twice)

	var list creditsv1alpha1.UserCreditsList
	if err := k8sClient.List(context.Background(), &list, client.InNamespace(testNamespace)); err != nil {
		t.Fatal(err)
	}
	users := 0
	for _, obj := range list.Items {
		if !strings.HasPrefix(obj.Spec.UserID, prefix) {
			continue
		}
		users++
		if err := lotInvariant(&obj); err != nil {
			t.Errorf("%s: %v", obj.Spec.UserID, err)
		}
		if got := obj.Spec.Credits; got != want[obj.Spec.UserID] {
			t.Errorf("%s: %d credits stored, the books say %d (a grant or consume applied twice, or lost)", obj.Spec.UserID, got, want[obj.Spec.UserID])
		}
		if c := apimeta.FindStatusCondition(obj.Status.Conditions, "Valid"); c == nil || c.Status != "True" {
			t.Errorf("%s: Valid condition %v", obj.Spec.UserID, c)
		}
	}
	if users != chaosUsers {
		t.Errorf("%d chaos users stored, want %d", users, chaosUsers)
	}
	checkChaosExpiries(t, grants, list.Items, seen)
}

// checkChaosExpiries: each expiring lot is stored once, closed as expired with nothing
// left, at most 5 s after its time by the operator's own stamp (closedAt, to the second);
// the watch's first sight of it is logged.
func checkChaosExpiries(t *testing.T, grants []*chaosKeyed, objs []creditsv1alpha1.UserCredits, seen *lotsWatch) {
	t.Helper()
	byUser := map[string]*creditsv1alpha1.UserCredits{}
	for _, g := range grants {
		for i := range objs {
			if objs[i].Spec.UserID == g.user {
				byUser[g.user] = &objs[i]
			}
		}
	}
	late, expiring := 0, 0
	for _, g := range grants {
		if g.expires.IsZero() {
			continue
		}
		expiring++
		obj := byUser[g.user]
		if obj == nil {
			continue
		}
		var found []creditsv1alpha1.Lot
		for _, l := range obj.Spec.Lots {
			if l.Credits == g.credits && l.Priority == 100 && l.ExpiresAt != nil && l.ExpiresAt.Time.Equal(g.expires) {
				found = append(found, l)
			}
		}
		if len(found) != 1 {
			t.Errorf("%s: %d lots of grant %s (%d credits expiring %s), want 1", g.user, len(found), g.key, g.credits, refTime(g.expires))
			continue
		}
		l := found[0]
		if l.Closed != "expired" || l.Remaining != 0 || l.ClosedAt == nil || l.ClosedAt.Sub(g.expires) > chaosExpiryBound {
			late++
			t.Errorf("%s: lot %s expiring %s: closed %q at %v with %d left, want expired within %v", g.user, l.ID, refTime(g.expires),
				l.Closed, l.ClosedAt, l.Remaining, chaosExpiryBound)
		}
	}
	seen.mu.Lock()
	defer seen.mu.Unlock()
	var worst time.Duration
	for _, d := range seen.expired {
		worst = max(worst, d)
	}
	t.Logf("%d lots expired during the run, %d late; the watch saw %d stored versions, saw %d expiries, the last %v after its time",
		expiring, late, seen.versions, len(seen.expired), worst.Round(time.Millisecond))
	for _, b := range seen.broken {
		t.Errorf("a stored version broke the lot invariant: %s", b)
	}
	framework.Eventually(t, 5*time.Second, func() error {
		for user := range byUser {
			var obj creditsv1alpha1.UserCredits
			if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(byUser[user]), &obj); err != nil {
				return err
			}
			if obj.Status.NextExpiry != nil || obj.Status.ExpiringCredits != 0 {
				return fmt.Errorf("%s: status still says %d credits expire at %v", user, obj.Status.ExpiringCredits, obj.Status.NextExpiry)
			}
		}
		return nil
	})
}
