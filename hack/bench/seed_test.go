package main

import (
	"testing"
	"time"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
)

// TestSeededRecordsReadAsTheOperatorWritesThem: the scale run's seeded annotations are in
// the operator's format: nothing damaged, every seeded grant key held, the whole history
// read with the seeded balance.
func TestSeededRecordsReadAsTheOperatorWritesThem(t *testing.T) {
	now := time.Now()
	user := userID("scale", 7)
	annotations := map[string]string{account.AppliedGrantsAnnotation: grantLedger(user, scaleGrantKeys, now)}
	fullHistory(annotations, 5, now)
	obj := &creditsv1alpha1.UserCredits{Spec: creditsv1alpha1.UserCreditsSpec{UserID: user, Credits: 5}}
	obj.Annotations = annotations
	a, err := account.Decode(obj)
	if err != nil || len(a.Damage()) != 0 {
		t.Fatalf("seeded record: %v, damage %v", err, a.Damage())
	}
	for i := range scaleGrantKeys {
		if !a.HoldsGrantKey(seedGrantKey(user, i), now, account.DefaultSettings()) {
			t.Errorf("seeded grant key %d is not held", i)
		}
	}
	h := a.History()
	if len(h) != account.HistoryLength {
		t.Fatalf("seeded history: %d entries, want %d", len(h), account.HistoryLength)
	}
	for _, e := range h {
		if e.Balance != 5 || e.At.After(now) || now.Sub(e.At) > historyEntries*time.Minute {
			t.Fatalf("seeded history entry %+v: want balance 5 within the last %d minutes", e, historyEntries)
		}
	}
}
