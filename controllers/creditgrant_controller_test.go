package controllers

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
)

// TestCreditGrantOutcomes: each answer of the store becomes the Applied condition's reason,
// and only the outcomes time or the user's objects can change are tried again. (The
// operator's suite applies real CreditGrants; this covers the answers it cannot provoke
// cheaply: 100 lots, a balance at 2^53-1, an apiserver that fails.)
func TestCreditGrantOutcomes(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	past := &metav1.Time{Time: now.Add(-time.Minute)}
	grant := func(expires *metav1.Time) *creditsv1alpha1.CreditGrant {
		return &creditsv1alpha1.CreditGrant{ObjectMeta: metav1.ObjectMeta{Name: "promo", Generation: 1},
			Spec: creditsv1alpha1.CreditGrantSpec{UserID: "user_A", Credits: 5, ExpiresAt: expires}}
	}
	for _, c := range []struct {
		err     error
		expires *metav1.Time
		res     account.Result
		status  metav1.ConditionStatus
		reason  string
		retried bool
	}{
		{nil, nil, account.Result{LotID: "lot_1"}, metav1.ConditionTrue, creditsv1alpha1.ReasonGranted, false},
		{nil, past, account.Result{LotID: "lot_1", Replayed: true}, metav1.ConditionTrue, creditsv1alpha1.ReasonGranted, false},
		{account.ErrInvalidOperation, past, account.Result{}, metav1.ConditionFalse, creditsv1alpha1.ReasonExpired, false},
		{account.ErrInvalidOperation, nil, account.Result{}, metav1.ConditionFalse, creditsv1alpha1.ReasonInvalid, false},
		{account.ErrInvalidUserID, nil, account.Result{}, metav1.ConditionFalse, creditsv1alpha1.ReasonInvalid, false},
		{account.ErrIdempotencyKeyReused, nil, account.Result{}, metav1.ConditionFalse, creditsv1alpha1.ReasonNameReused, false},
		{fmt.Errorf("%w: 2 objects claim user", account.ErrUntrusted), nil, account.Result{}, metav1.ConditionFalse, creditsv1alpha1.ReasonUserUntrusted, true},
		{account.ErrTooManyLots, nil, account.Result{}, metav1.ConditionFalse, creditsv1alpha1.ReasonTooManyLots, true},
		{account.ErrBalanceOverflow, nil, account.Result{}, metav1.ConditionFalse, creditsv1alpha1.ReasonOverLimit, true},
		{errors.New("the server is currently unable to handle the request"), nil, account.Result{}, metav1.ConditionFalse, creditsv1alpha1.ReasonRetrying, true},
	} {
		cg := grant(c.expires)
		out := judge(cg, c.res, c.err, now)
		if out.status != c.status || out.reason != c.reason || out.message == "" {
			t.Errorf("%v: %+v, want %s %s", c.err, out, c.status, c.reason)
		}
		meta.SetStatusCondition(&cg.Status.Conditions, metav1.Condition{Type: creditsv1alpha1.ConditionApplied, Status: out.status, Reason: out.reason, Message: out.message})
		cg.Status.LotID = c.res.LotID
		if settled(cg) == c.retried {
			t.Errorf("%v (%s): settled %v, want %v", c.err, out.reason, settled(cg), !c.retried)
		}
	}
}

// TestCreditGrantRetryBackoff: a failing grant is tried again after as long as it has been
// failing, within bounds.
func TestCreditGrantRetryBackoff(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, c := range []struct {
		failingFor time.Duration
		want       time.Duration
	}{{0, retryMin}, {time.Second, retryMin}, {time.Minute, time.Minute}, {time.Hour, retryMax}} {
		cg := &creditsv1alpha1.CreditGrant{}
		cg.Status.Conditions = []metav1.Condition{{Type: creditsv1alpha1.ConditionApplied, Status: metav1.ConditionFalse,
			Reason: creditsv1alpha1.ReasonTooManyLots, LastTransitionTime: metav1.NewTime(now.Add(-c.failingFor))}}
		if got := retryAfter(cg, now); got != c.want {
			t.Errorf("failing for %v: retried after %v, want %v", c.failingFor, got, c.want)
		}
	}
}

// TestCreditGrantOperation: the grant a CreditGrant asks for, keyed by its name.
func TestCreditGrantOperation(t *testing.T) {
	at := metav1.NewTime(time.Unix(1_900_000_000, 0))
	cg := &creditsv1alpha1.CreditGrant{ObjectMeta: metav1.ObjectMeta{Name: "welcome.q1", UID: "uid-1"},
		Spec: creditsv1alpha1.CreditGrantSpec{UserID: "user_A", Credits: 5, ExpiresAt: &at, Priority: ptr(int32(7)), Reason: "welcome"}}
	op := GrantOperation(cg)
	if op.Kind != account.OpGrant || op.Amount != 5 || op.IdempotencyKey != "creditgrant:welcome.q1" ||
		op.Terms.Source != account.SourceGitOps || op.Terms.Reference != "welcome.q1" || op.Terms.Reason != "welcome" ||
		!op.Terms.ExpiresAt.Equal(at.Time) || *op.Terms.Priority != 7 || op.Terms.ID != "" {
		t.Fatalf("%+v", op)
	}
}

func ptr[T any](v T) *T { return &v }
