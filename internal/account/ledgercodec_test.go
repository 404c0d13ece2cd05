package account

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestAccountTextLedgersReadBackExactly: every field of every kind of entry reads back as
// it was written, whatever the results and times do between entries (a balance set lower,
// a clock that went back, results far from what the operation alone gives).
func TestAccountTextLedgersReadBackExactly(t *testing.T) {
	keys := []appliedKey{
		{Key: hashKey("a"), Op: OpConsume, Amount: 5, Result: 95, At: 1_800_000_000},
		{Key: hashKey("b"), Op: OpConsume, Amount: 5, Result: 90, At: 1_800_000_010},
		{Key: hashKey("c"), Op: OpSet, Amount: 7, Result: 7, At: 1_800_000_005}, // a clock that went back
		{Key: hashKey("d"), Op: OpReserve, Amount: 3, Result: 2, At: 1_800_000_020, ID: "rsv_1"},
		{Key: hashKey("e"), Op: OpCapture, Amount: captureAllAmount, Result: 2, At: 1_800_000_030, ID: "rsv_1"},
		{Key: hashKey("f"), Op: OpGrant, Amount: 1 << 40, Result: MaxBalance, At: 1_800_000_040, ID: "lot_1", Terms: "0a1b2c3d4e5f"},
		{Key: hashKey("g"), Op: opCreditGrant, Amount: 9, Result: 0, At: 1_800_000_050, Terms: "ffffffffffff"},
		{Key: hashKey("h"), Op: OpVoid, Amount: 0, Result: 0, At: 1_800_000_060, ID: "lot_1"},
		{Key: hashKey("i"), Op: OpRelease, Amount: 0, Result: 12, At: 1_800_000_070, ID: "rsv_2"},
	}
	text, ok := encodeKeys(keys)
	if got, back := decodeKeys(text); !ok || !back || !slices.Equal(got, keys) {
		t.Errorf("key ledger %q reads back as %+v (%v), want %+v", text, got, back, keys)
	}
	closed := []closedHold{
		{ID: "rsv_1", State: closedCaptured, Held: 3, Captured: 2, Result: 7, At: 1_800_000_000},
		{ID: "rsv_2", State: closedReleased, Held: 4, Result: 11, At: 1_799_999_990},
		{ID: "rsv_3", State: closedExpired, Held: MaxBalance, Result: MaxBalance, At: 1_800_000_100},
	}
	text, ok = encodeClosed(closed)
	if got, back := decodeClosed(text); !ok || !back || !slices.Equal(got, closed) {
		t.Errorf("closed holds %q read back as %+v (%v), want %+v", text, got, back, closed)
	}
	for _, bad := range []appliedKey{
		{Key: hashKey("a"), Op: OpCapture, ID: "rsv,1"}, {Key: hashKey("a"), Op: OpGrant, Terms: "a;b"}, {Key: "short", Op: OpConsume},
		{Key: hashKey("a"), Op: "spend"},
	} {
		if text, ok := encodeKeys([]appliedKey{bad}); ok {
			t.Errorf("%+v encoded as %q: an entry that does not read back must be refused", bad, text)
		}
	}
	if text, ok := encodeClosed([]closedHold{{ID: "rsv;1", State: closedReleased}}); ok {
		t.Errorf("a closed hold named rsv;1 encoded as %q", text)
	}
}

// TestAccountDamagedTextLedgers (attack: the text form of a part edited by hand): a key
// ledger that does not read makes the record untrusted (it guards against repeats); the
// closed holds that do not read are reported and read as empty.
func TestAccountDamagedTextLedgers(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 10)
	for _, op := range []Operation{
		{Kind: OpConsume, Amount: 1, IdempotencyKey: "k1"}, {Kind: OpGrant, Amount: 1, IdempotencyKey: "g1"}, reserve("rsv_1", 1),
		{Kind: OpRelease, ReservationID: "rsv_1"},
	} {
		if _, _, err := r.do(op, now); err != nil {
			t.Fatal(err)
		}
	}
	entry := r.annotation(AppliedRequestsAnnotation)
	for name, text := range map[string]string{
		"garbage":                 "garbage",
		"a key hash cut short":    entry[1:],
		"a key hash not base64":   "*" + entry[1:],
		"an unknown operation":    entry[:keyChars] + "x" + entry[keyChars+1:],
		"a field missing":         entry[:strings.LastIndex(entry, ",")],
		"a separator in an id":    entry + ",rsv 1",
		"too many fields":         entry + ",a,b,c",
		"a second entry garbled":  entry + ";" + entry[:10],
		"JSON of another shape":   `{"k":"x"}`,
		"JSON with a short hash":  `[{"k":"00112233","op":"consume","n":1,"r":9,"t":1800000000}]`,
		"JSON of an unknown kind": `[{"k":"00112233445566778899aabbccddeeff","op":"spend","n":1,"r":9,"t":1800000000}]`,
	} {
		for _, ledger := range []string{AppliedRequestsAnnotation, AppliedGrantsAnnotation} {
			obj := r.obj.DeepCopy()
			obj.Annotations[ledger] = text
			if _, err := Decode(obj); !errors.Is(err, ErrUntrusted) {
				t.Errorf("%s %s: decoded with %v, want ErrUntrusted", ledger, name, err)
			}
		}
	}
	closed := r.annotation(ClosedHoldsAnnotation)
	for name, text := range map[string]string{
		"garbage": "garbage", "an unknown state": strings.Replace(closed, ",r1,", ",x1,", 1), "a field missing": closed[:strings.LastIndex(closed, ",")],
	} {
		obj := r.obj.DeepCopy()
		obj.Annotations[ClosedHoldsAnnotation] = text
		a, err := Decode(obj)
		if err != nil || !slices.Equal(a.Damage(), []string{ClosedHoldsAnnotation}) {
			t.Errorf("closed holds %s (%q): %v, damage %v, want only the closed holds reported", name, text, err, a.Damage())
		}
	}
}
