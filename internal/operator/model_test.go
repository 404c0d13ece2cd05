package operator_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
)

// rawAdd adds delta to user's balance straight at the apiserver with a read-modify-write
// under the resourceVersion precondition, as a careful script behind the API would: with
// lots stored, to the balance lot too (the CRD refuses a spec.credits that disagrees with
// them).
func rawAdd(ctx context.Context, user string, delta int64) error {
	for {
		obj := &creditsv1alpha1.UserCredits{}
		if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: account.ObjectNameForUser(user)}, obj); err != nil {
			return err
		}
		patch := client.MergeFromWithOptions(obj.DeepCopy(), client.MergeFromWithOptimisticLock{})
		obj.Spec.Credits += delta
		if len(obj.Spec.Lots) > 0 && delta != 0 {
			i := slices.IndexFunc(obj.Spec.Lots, func(l creditsv1alpha1.Lot) bool { return l.ID == account.BalanceLotID })
			if i < 0 {
				obj.Spec.Lots = append(obj.Spec.Lots, creditsv1alpha1.Lot{ID: account.BalanceLotID, Credits: 1, Priority: account.DefaultPriority,
					Source: account.SourceSet, GrantedAt: metav1.Now()})
				i = len(obj.Spec.Lots) - 1
			}
			l := &obj.Spec.Lots[i]
			l.Remaining += delta
			l.Credits = max(l.Credits, l.Remaining)
		}
		err := k8sClient.Patch(ctx, obj, patch)
		if !apierrors.IsConflict(err) {
			return err
		}
	}
}

// keyedOp is one keyed operation that several workers of a round send, as retries would.
type keyedOp struct {
	path   string
	key    string
	amount int64
}

// modelRound is what one round of random operations on one user must come to.
type modelRound struct {
	mu       sync.Mutex
	delta    int64             // sum of the acknowledged changes
	applied  map[string]string // idempotency key → its first 200 answer
	ops      atomic.Int64
	problems []string
}

func (m *modelRound) fail(format string, args ...any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.problems = append(m.problems, fmt.Sprintf(format, args...))
}

// keyed records the answer to a keyed change: the first success counts, and every other
// success for the key must answer the same. A refusal (402) records nothing, so a copy
// sent after a grant may still succeed.
func (m *modelRound) keyed(key string, change int64, status int, body string) {
	if status != 200 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if first, seen := m.applied[key]; seen {
		if first != body {
			m.problems = append(m.problems, fmt.Sprintf("key %s answered %s, earlier %s", key, body, first))
		}
		return
	}
	m.applied[key] = body
	m.delta += change
}

// TestRandomInterleavingsMatchTheModel drives random sets, consumes and grants (keyed and
// keyless, replays included) over two replicas, mixed with writes straight to the
// apiserver, and checks every stored balance against a model: nothing lost, nothing
// doubled. Sets and direct sets open each round; the rest runs concurrently within it.
// USERCREDITS_MODEL_SEED replays a run.
func TestRandomInterleavingsMatchTheModel(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("USERCREDITS_MODEL_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d (USERCREDITS_MODEL_SEED=%d replays it)", seed, seed)
	bases := twoReplicas(t)
	admin := serviceAccountToken(t, "model-admin", "credits-admin")
	const users, rounds, workers, opsPerWorker = 2, 20, 6, 4
	var total atomic.Int64
	var wg sync.WaitGroup
	for u := range users {
		wg.Go(func() {
			user := fmt.Sprintf("user_Model%d", u)
			rng := rand.New(rand.NewPCG(seed, uint64(u)))
			total.Add(runModelUser(t, rng, bases, admin, user, rounds, workers, opsPerWorker))
		})
	}
	wg.Wait()
	if !t.Failed() {
		t.Logf("%d operations over %d users, %d rounds, 2 replicas: all balances match the model", total.Load(), users, rounds)
	}
}

func runModelUser(t *testing.T, rng *rand.Rand, bases [2]string, admin, user string, rounds, workers, opsPerWorker int) int64 {
	ctx := context.Background()
	userTok := tokenFor(t, user)
	var ops int64
	var grantKeys []string // keys of earlier rounds' grants, each with amount 1…20 encoded
	for r := range rounds {
		// Open the round with a set: through either replica (sometimes keyed), or behind
		// the API's back; the next operations then race the replicas' caches.
		start := int64(rng.IntN(40))
		switch rng.IntN(3) {
		case 0:
			if err := rawAdd(ctx, user, 0); apierrors.IsNotFound(err) || r == 0 {
				status, body := request(t, "POST", creditsURL(bases[rng.IntN(2)], "/api/credits", user), admin, fmt.Sprintf(`{"credits":%d}`, start))
				if status != 200 {
					t.Errorf("%s round %d: set: %d %s", user, r, status, body)
					return ops
				}
			} else {
				rawSet(t, user, start)
			}
		default:
			hdr := []string{}
			if rng.IntN(2) == 0 {
				hdr = []string{"Idempotency-Key", fmt.Sprintf("%s-set-%d", user, r)}
			}
			status, body := request(t, "POST", creditsURL(bases[rng.IntN(2)], "/api/credits", user), admin, fmt.Sprintf(`{"credits":%d}`, start), hdr...)
			if want := fmt.Sprintf(`{"success":true,"credits":%d}`, start); status != 200 || body != want {
				t.Errorf("%s round %d: set %d: %d %s", user, r, start, status, body)
				return ops
			}
		}
		ops++

		m := &modelRound{applied: map[string]string{}}
		// Keys this round's workers may repeat, chosen before they start so that copies race.
		var shared []keyedOp
		for i := range 4 {
			if rng.IntN(2) == 0 {
				shared = append(shared, keyedOp{"/api/credits/grant", fmt.Sprintf("%s-g-%d-%d-%d", user, r, i, 1+rng.IntN(20)), 0})
			} else {
				shared = append(shared, keyedOp{"/api/credits/consume", fmt.Sprintf("%s-c-%d-%d", user, r, i), int64(1 + rng.IntN(3))})
			}
		}
		for i := range shared {
			if shared[i].amount == 0 {
				shared[i].amount = grantAmount(shared[i].key)
			}
		}
		old := append([]string(nil), grantKeys...)
		seeds := make([]uint64, workers)
		for i := range seeds {
			seeds[i] = rng.Uint64()
		}
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				wr := rand.New(rand.NewPCG(seeds[w], 1))
				for i := range opsPerWorker {
					modelOp(t, ctx, wr, m, bases, admin, userTok, user, fmt.Sprintf("%s-%d-%d-%d", user, r, w, i), shared, old)
				}
			})
		}
		wg.Wait()
		for _, s := range shared {
			if _, applied := m.applied[s.key]; applied && s.path == "/api/credits/grant" {
				grantKeys = append(grantKeys, s.key)
			}
		}
		ops += m.ops.Load()
		for _, p := range m.problems {
			t.Errorf("%s round %d: %s", user, r, p)
		}
		if got, want := storedBalanceOf(t, user), start+m.delta; got != want {
			t.Errorf("%s round %d: stored %d, model says %d (start %d, acknowledged change %+d)", user, r, got, want, start, m.delta)
			return ops
		}
	}
	return ops
}

// grantAmount reads the amount encoded as the last part of a model grant key.
func grantAmount(key string) int64 {
	i := len(key) - 1
	for key[i-1] != '-' {
		i--
	}
	n, _ := strconv.ParseInt(key[i:], 10, 64)
	return n
}

// modelOp sends one random operation and records what it must have done.
func modelOp(t *testing.T, ctx context.Context, rng *rand.Rand, m *modelRound, bases [2]string, admin, userTok, user, fresh string, shared []keyedOp, oldGrants []string) {
	m.ops.Add(1)
	base := bases[rng.IntN(2)]
	switch pick := rng.IntN(10); {
	case pick < 3: // a copy of one of the round's shared keyed operations, sent by a retrying client
		s := shared[rng.IntN(len(shared))]
		body := fmt.Sprintf(`{"credits":%d}`, s.amount)
		status, got := request(t, "POST", creditsURL(base, s.path, user), admin, body, "Idempotency-Key", s.key)
		change := s.amount
		if s.path == "/api/credits/consume" {
			change = -change
		}
		if status != 200 && status != 402 {
			m.fail("%s %s: %d %s", s.path, s.key, status, got)
		}
		m.keyed(s.key, change, status, got)
	case pick < 4 && len(oldGrants) > 0: // a replay of an earlier round's grant: changes nothing
		key := oldGrants[rng.IntN(len(oldGrants))]
		status, got := request(t, "POST", creditsURL(base, "/api/credits/grant", user), admin, fmt.Sprintf(`{"credits":%d}`, grantAmount(key)), "Idempotency-Key", key)
		if status != 200 {
			m.fail("replayed grant %s: %d %s", key, status, got)
		}
	case pick < 7: // a keyless consume by the user, or a keyed one by a service
		n := int64(1 + rng.IntN(3))
		var status int
		var got string
		if rng.IntN(2) == 0 {
			status, got = request(t, "POST", base+"/api/credits/consume", userTok, fmt.Sprintf(`{"credits":%d}`, n))
			if status == 200 {
				m.mu.Lock()
				m.delta -= n
				m.mu.Unlock()
			}
		} else {
			status, got = request(t, "POST", creditsURL(base, "/api/credits/consume", user), admin, fmt.Sprintf(`{"credits":%d}`, n), "Idempotency-Key", fresh)
			m.keyed(fresh, -n, status, got)
		}
		if status != 200 && status != 402 {
			m.fail("consume %d: %d %s", n, status, got)
		}
	case pick < 9: // a fresh keyed grant
		n := int64(1 + rng.IntN(20))
		status, got := request(t, "POST", creditsURL(base, "/api/credits/grant", user), admin, fmt.Sprintf(`{"credits":%d}`, n), "Idempotency-Key", fresh)
		if status != 200 {
			m.fail("grant %d: %d %s", n, status, got)
		}
		m.keyed(fresh, n, status, got)
	default: // a change straight at the apiserver
		n := int64(1 + rng.IntN(5))
		if err := rawAdd(ctx, user, n); err != nil {
			m.fail("raw add: %v", err)
			return
		}
		m.mu.Lock()
		m.delta += n
		m.mu.Unlock()
	}
}
