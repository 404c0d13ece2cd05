package credits

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func reserve(id string, n int64) Operation {
	return Operation{Kind: OpReserve, Amount: n, ReservationID: id, TTL: time.Minute}
}

func TestReservationLifecycle(t *testing.T) {
	now := time.Now()
	u := &user{credits: 10}
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
		{"release a after capture", Operation{Kind: OpRelease, ReservationID: "a"}, 0, 6, ErrReservationCaptured, false},
		{"release b", Operation{Kind: OpRelease, ReservationID: "b"}, 0, 9, nil, false},
		{"release b again", Operation{Kind: OpRelease, ReservationID: "b"}, 0, 9, nil, true},
		{"capture b after release", Operation{Kind: OpCapture, ReservationID: "b", CaptureAll: true}, 0, 9, ErrReservationReleased, false},
		{"capture more than held", Operation{Kind: OpCapture, ReservationID: "x", Amount: 1}, 0, 9, ErrReservationNotFound, false},
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
	}
	for _, s := range steps {
		d, err := u.do(s.op, now.Add(s.at))
		if !errors.Is(err, s.err) || d.result.Credits != s.credits || d.result.Replayed != s.replayed {
			t.Fatalf("%s: credits=%d replayed=%v err=%v; want %d %v %v", s.name, d.result.Credits, d.result.Replayed, err, s.credits, s.replayed, s.err)
		}
	}
	if len(u.holds) != 0 || u.credits != 0 {
		t.Fatalf("left %v holds, %d credits", u.holds, u.credits)
	}
}

func TestReservationBoundsAndKeys(t *testing.T) {
	now := time.Now()
	u := &user{credits: 1000}
	for i := range 100 {
		if _, err := u.do(reserve(fmt.Sprint("h", i), 1), now); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := u.do(reserve("h100", 1), now); !errors.Is(err, ErrTooManyReservations) {
		t.Fatalf("101st open hold: %v", err)
	}
	keyed := Operation{Kind: OpReserve, Amount: 2, ReservationID: "k1", TTL: time.Minute, IdempotencyKey: "gen-7"}
	_, _ = u.do(Operation{Kind: OpRelease, ReservationID: "h0"}, now)
	first, err := u.do(keyed, now)
	if err != nil || first.result.ReservationID != "k1" {
		t.Fatalf("keyed reserve: %+v %v", first, err)
	}
	retry := keyed
	retry.ReservationID = "k2" // the store picks a new ID for each request; the key wins
	again, err := u.do(retry, now)
	if err != nil || !again.result.Replayed || again.result.ReservationID != "k1" || again.result.Credits != first.result.Credits {
		t.Fatalf("replayed reserve: %+v %v", again, err)
	}
	for _, bad := range []Operation{
		{Kind: OpReserve, Amount: 0, ReservationID: "z", TTL: time.Minute},
		{Kind: OpReserve, Amount: 1, ReservationID: "z", TTL: 0},
		{Kind: OpReserve, Amount: 1, ReservationID: "z", TTL: MaxReservationTTL + time.Second},
		{Kind: OpCapture, Amount: -1, ReservationID: "k1"},
		{Kind: OpRelease},
	} {
		if _, err := u.do(bad, now); !errors.Is(err, ErrInvalidOperation) {
			t.Errorf("%+v: %v, want ErrInvalidOperation", bad, err)
		}
	}
}

// TestKeyedCaptureAndReleaseRetriesAreReplayed: a capture or release retried with its
// Idempotency-Key and the same body answers the original result, marked replayed; the same
// key with another body is a different request.
func TestKeyedCaptureAndReleaseRetriesAreReplayed(t *testing.T) {
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
		u := &user{credits: 10}
		if _, err := u.do(reserve("a", 4), now); err != nil {
			t.Fatal(err)
		}
		first, err := u.do(c.op, now)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		again, err := u.do(c.op, now)
		if err != nil || !again.result.Replayed || again.result.Credits != first.result.Credits {
			t.Errorf("%s, retried with its key: %+v, %v; want a replay of %+v", c.name, again.result, err, first.result)
		}
		if _, err := u.do(c.other, now); !errors.Is(err, ErrIdempotencyKeyReused) {
			t.Errorf("%s: the same key with another request: %v, want %v", c.name, err, ErrIdempotencyKeyReused)
		}
	}
}
