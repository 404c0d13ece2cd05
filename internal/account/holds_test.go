package account

import (
	"errors"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

func reserve(id string, n int64) Operation {
	return Operation{Kind: OpReserve, Amount: n, ReservationID: id, TTL: time.Minute}
}

func reservationsOf(holds ...Hold) []creditsv1alpha1.Reservation {
	out := make([]creditsv1alpha1.Reservation, len(holds))
	for i, h := range holds {
		out[i] = creditsv1alpha1.Reservation{ID: h.ID, Credits: h.Credits, ExpiresAt: metav1.NewTime(h.ExpiresAt)}
	}
	return out
}

func TestAccountHoldLifecycle(t *testing.T) {
	now := time.Now()
	r := newRecord(t, 10)
	steps := []struct {
		name     string
		op       Operation
		at       time.Duration
		credits  int64 // the answer's available balance
		err      error
		replayed bool
	}{
		{"reserve 4", reserve("a", 4), 0, 6, nil, false},
		{"reserve 3", reserve("b", 3), 0, 3, nil, false},
		{"reserve more than available", reserve("c", 4), 0, 3, ErrInsufficientCredits, false},
		{"capture 1 of a: 3 return", Operation{Kind: OpCapture, ReservationID: "a", Amount: 1}, 0, 6, nil, false},
		{"capture a again, same body", Operation{Kind: OpCapture, ReservationID: "a", Amount: 1}, 0, 6, nil, true},
		{"capture a again, other body", Operation{Kind: OpCapture, ReservationID: "a", Amount: 2}, 0, 6, ErrReservationCaptured, false},
		{"capture all of a after capturing 1 of its 4", Operation{Kind: OpCapture, ReservationID: "a", CaptureAll: true}, 0, 6, ErrReservationCaptured, false},
		{"release a after capture", Operation{Kind: OpRelease, ReservationID: "a"}, 0, 6, ErrReservationCaptured, false},
		{"release b", Operation{Kind: OpRelease, ReservationID: "b"}, 0, 9, nil, false},
		{"release b again", Operation{Kind: OpRelease, ReservationID: "b"}, 0, 9, nil, true},
		{"capture b after release", Operation{Kind: OpCapture, ReservationID: "b", CaptureAll: true}, 0, 9, ErrReservationReleased, false},
		{"capture an unknown hold", Operation{Kind: OpCapture, ReservationID: "x", Amount: 1}, 0, 9, ErrReservationNotFound, false},
		{"reserve d 5", reserve("d", 5), 0, 4, nil, false},
		{"capture d beyond its hold", Operation{Kind: OpCapture, ReservationID: "d", Amount: 6}, 0, 4, ErrInvalidOperation, false},
		{"expire d before it is due: nothing", Operation{Kind: OpExpire, ReservationID: "d"}, 30 * time.Second, 4, nil, false},
		{"capture d after its expiry, before the controller", Operation{Kind: OpCapture, ReservationID: "d", CaptureAll: true}, 2 * time.Minute, 4, ErrReservationExpired, false},
		{"expire d", Operation{Kind: OpExpire, ReservationID: "d"}, 2 * time.Minute, 9, nil, false},
		{"release d after expiry", Operation{Kind: OpRelease, ReservationID: "d"}, 3 * time.Minute, 9, ErrReservationExpired, false},
		{"capture d long after: record forgotten", Operation{Kind: OpCapture, ReservationID: "d", CaptureAll: true}, 25 * time.Hour, 9, ErrReservationNotFound, false},
		{"reserve e 9, capture all", reserve("e", 9), 0, 0, nil, false},
		{"capture e all", Operation{Kind: OpCapture, ReservationID: "e", CaptureAll: true}, 0, 0, nil, false},
		{"capture e with the same amount explicitly", Operation{Kind: OpCapture, ReservationID: "e", Amount: 9}, 0, 0, nil, true},
		{"capture e all again", Operation{Kind: OpCapture, ReservationID: "e", CaptureAll: true}, 0, 0, nil, true},
	}
	for _, s := range steps {
		res, _, err := r.do(s.op, now.Add(s.at))
		if !errors.Is(err, s.err) || res.Credits != s.credits || res.Replayed != s.replayed {
			t.Fatalf("%s: credits=%d replayed=%v err=%v; want %d %v %v", s.name, res.Credits, res.Replayed, err, s.credits, s.replayed, s.err)
		}
	}
	if a := r.account(); len(a.Holds) != 0 || a.Available != 0 {
		t.Fatalf("left %v holds, %d credits", a.Holds, a.Available)
	}
}

// TestAccountCaptureOfZeroIsNotAReplayOfTheWholeHold (attack: a capture answered as a
// replay, nothing charged): capturing 0 spends nothing and returns the hold; a later
// capture of the whole hold is another request, refused, not answered as a replay.
func TestAccountCaptureOfZeroIsNotAReplayOfTheWholeHold(t *testing.T) {
	now := time.Now()
	r := newRecord(t, 10)
	if _, _, err := r.do(reserve("h", 5), now); err != nil {
		t.Fatal(err)
	}
	if res, _, err := r.do(Operation{Kind: OpCapture, ReservationID: "h", Amount: 0}, now); err != nil || res.Credits != 10 {
		t.Fatalf("capture 0: %+v %v", res, err)
	}
	res, _, err := r.do(Operation{Kind: OpCapture, ReservationID: "h", CaptureAll: true}, now)
	if !errors.Is(err, ErrReservationCaptured) || res.Replayed {
		t.Fatalf("capture all after capturing 0: %+v %v, want ErrReservationCaptured", res, err)
	}
	if res, _, err := r.do(Operation{Kind: OpCapture, ReservationID: "h", Amount: 0}, now); err != nil || !res.Replayed || res.Credits != 10 {
		t.Fatalf("capture 0 again: %+v %v, want a replay", res, err)
	}
	if r.available() != 10 {
		t.Fatalf("balance %d, want 10", r.available())
	}
}

func TestAccountHoldBoundsAndKeys(t *testing.T) {
	now := time.Now()
	r := newRecord(t, 1000)
	for i := range MaxOpenHolds {
		if _, _, err := r.do(reserve(fmt.Sprint("h", i), 1), now); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := r.do(reserve("h100", 1), now); !errors.Is(err, ErrTooManyReservations) {
		t.Fatalf("101st open hold: %v", err)
	}
	keyed := Operation{Kind: OpReserve, Amount: 2, ReservationID: "k1", TTL: time.Minute, IdempotencyKey: "gen-7"}
	_, _, _ = r.do(Operation{Kind: OpRelease, ReservationID: "h0"}, now)
	first, _, err := r.do(keyed, now)
	if err != nil || first.ReservationID != "k1" {
		t.Fatalf("keyed reserve: %+v %v", first, err)
	}
	retry := keyed
	retry.ReservationID = "k2" // the store picks a new ID for each request; the key wins
	again, _, err := r.do(retry, now)
	if err != nil || !again.Replayed || again.ReservationID != "k1" || again.Credits != first.Credits {
		t.Fatalf("replayed reserve: %+v %v", again, err)
	}
	for _, bad := range []Operation{
		{Kind: OpReserve, Amount: 0, ReservationID: "z", TTL: time.Minute},
		{Kind: OpReserve, Amount: 1, ReservationID: "z", TTL: 0},
		{Kind: OpReserve, Amount: 1, ReservationID: "z", TTL: MaxReservationTTL + time.Second},
		{Kind: OpCapture, Amount: -1, ReservationID: "k1"},
		{Kind: OpRelease},
	} {
		if _, _, err := r.do(bad, now); !errors.Is(err, ErrInvalidOperation) {
			t.Errorf("%+v: %v, want ErrInvalidOperation", bad, err)
		}
	}
}

// TestAccountKeyedCaptureAndReleaseRetriesAreReplayed: a capture or release retried with
// its Idempotency-Key and the same body answers the original result, marked replayed; the
// same key with another body is a different request.
func TestAccountKeyedCaptureAndReleaseRetriesAreReplayed(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		name  string
		op    Operation
		other Operation // the same key, another request
	}{
		{"capture 3", Operation{Kind: OpCapture, ReservationID: "a", Amount: 3, IdempotencyKey: "cap-1"},
			Operation{Kind: OpCapture, ReservationID: "a", Amount: 2, IdempotencyKey: "cap-1"}},
		{"capture all", Operation{Kind: OpCapture, ReservationID: "a", CaptureAll: true, IdempotencyKey: "cap-2"},
			Operation{Kind: OpCapture, ReservationID: "a", Amount: 0, IdempotencyKey: "cap-2"}},
		{"release", Operation{Kind: OpRelease, ReservationID: "a", IdempotencyKey: "rel-1"},
			Operation{Kind: OpRelease, ReservationID: "b", IdempotencyKey: "rel-1"}},
	} {
		r := newRecord(t, 10)
		if _, _, err := r.do(reserve("a", 4), now); err != nil {
			t.Fatal(err)
		}
		first, _, err := r.do(c.op, now)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		again, _, err := r.do(c.op, now)
		if err != nil || !again.Replayed || again.Credits != first.Credits {
			t.Errorf("%s, retried with its key: %+v, %v; want a replay of %+v", c.name, again, err, first)
		}
		if _, _, err := r.do(c.other, now); !errors.Is(err, ErrIdempotencyKeyReused) {
			t.Errorf("%s: the same key with another request: %v, want %v", c.name, err, ErrIdempotencyKeyReused)
		}
	}
}

func TestAccountDueHoldsAndNextExpiry(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	r := newRecord(t, 10)
	for i, ttl := range []time.Duration{3 * time.Second, time.Second, 2 * time.Second} {
		op := reserve(fmt.Sprint("h", i), 1)
		op.TTL = ttl
		if _, _, err := r.do(op, now); err != nil {
			t.Fatal(err)
		}
	}
	a := r.account()
	if next := a.NextExpiry(); !next.Equal(now.Add(time.Second)) {
		t.Fatalf("next expiry %v, want %v", next, now.Add(time.Second))
	}
	if due := a.Due(now.Add(2 * time.Second)); len(due) != 2 || a.Held() != 3 {
		t.Fatalf("due after 2s: %+v, held %d", due, a.Held())
	}
}
