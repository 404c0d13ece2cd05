package credits

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gitread/usercredits-operator/internal/account"
)

// A refund or dispute of a payment no record names is answered 200 "unmatched", which
// Stripe never delivers again. It may be early rather than foreign: Stripe does not
// deliver in order, and retries a purchase answered 5xx for up to 3 days. So what such an
// event says of the payment is remembered, in one ConfigMap of the operator's namespace,
// and a purchase of the payment arriving later carries it into its grant's write
// (account/early.go). Bounded: entries older than EarlyChargeRetention (Stripe's retry
// horizon) are dropped, and at most EarlyChargesMax are kept, the newest.

// +kubebuilder:rbac:groups="",namespace=system,resources=configmaps,verbs=create
// +kubebuilder:rbac:groups="",namespace=system,resources=configmaps,resourceNames=usercredits-stripe-early,verbs=get;update

// EarlyChargesConfigMap names the ConfigMap of refunds and disputes that came before their
// purchase.
const EarlyChargesConfigMap = "usercredits-stripe-early"

const (
	// EarlyChargeRetention is how long an early refund or dispute is remembered: Stripe
	// retries a purchase's delivery for 3 days (and an hour of margin).
	EarlyChargeRetention = 73 * time.Hour
	// EarlyChargesMax bounds the entries (about 120 bytes each: far below a ConfigMap's 1 MiB).
	EarlyChargesMax = 2000
)

// earlyCharge is one payment's entry: what its refunds and disputes said, and when last.
type earlyCharge struct {
	Amount   int64  `json:"amount,omitempty"`
	Refunded int64  `json:"refunded,omitempty"`
	Dispute  string `json:"dispute,omitempty"`
	Status   string `json:"status,omitempty"`
	Created  int64  `json:"created,omitempty"`
	At       int64  `json:"at"`
}

func (e earlyCharge) state() account.ChargeState {
	return account.ChargeState{Amount: e.Amount, Refunded: e.Refunded, Dispute: e.Dispute, DisputeStatus: e.Status, DisputeCreated: e.Created}
}

// configMapKey is what a ConfigMap's data keys may be; a PaymentIntent ID always is
// (pi_ and letters and digits); another is never remembered.
var configMapKey = regexp.MustCompile(`^[-._a-zA-Z0-9]{1,253}$`)

// EarlyCharge is what refunds and disputes of payment pi that came before any purchase
// named it said (zero for none), read from the apiserver.
func (s *Store) EarlyCharge(ctx context.Context, pi string) (account.ChargeState, error) {
	if !configMapKey.MatchString(pi) {
		return account.ChargeState{}, nil
	}
	cm, err := s.earlyCharges(ctx)
	if err != nil || cm == nil {
		return account.ChargeState{}, err
	}
	var e earlyCharge
	if v, ok := cm.Data[pi]; !ok || json.Unmarshal([]byte(v), &e) != nil || time.Since(time.Unix(e.At, 0)) > EarlyChargeRetention ||
		!account.ValidEarlyCharge(e.state()) {
		return account.ChargeState{}, nil // none, or damaged by a hand edit: a purchase is never refused for it
	}
	return e.state(), nil
}

// earlyCharges reads the ConfigMap; nil when there is none.
func (s *Store) earlyCharges(ctx context.Context) (*corev1.ConfigMap, error) {
	cm := &corev1.ConfigMap{}
	err := s.opts.APIReader.Get(ctx, client.ObjectKey{Namespace: s.opts.Namespace, Name: EarlyChargesConfigMap}, cm)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading the early refunds and disputes: %w", err)
	}
	return cm, nil
}

// rememberEarly merges what op, a refund or dispute no record's lot names, says of its
// payment into the ConfigMap, with optimistic concurrency.
func (s *Store) rememberEarly(ctx context.Context, op account.Operation) error {
	if !configMapKey.MatchString(op.Payment) {
		return nil
	}
	backoff := conflictBackoff
	for {
		cm, err := s.earlyCharges(ctx)
		if err != nil {
			return err
		}
		create := cm == nil
		if create {
			cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: EarlyChargesConfigMap, Namespace: s.opts.Namespace,
				Labels: map[string]string{"app.kubernetes.io/managed-by": "usercredits-operator"}}}
		}
		now := time.Now()
		var e earlyCharge
		if v, ok := cm.Data[op.Payment]; ok && json.Unmarshal([]byte(v), &e) == nil && now.Sub(time.Unix(e.At, 0)) <= EarlyChargeRetention {
			e = earlyCharge{}.with(account.MergeCharge(e.state(), op.Charge))
		} else {
			e = earlyCharge{}.with(account.MergeCharge(account.ChargeState{}, op.Charge))
		}
		e.At = now.Unix()
		data, _ := json.Marshal(e) // cannot fail: plain values
		cm.Data = pruneEarly(cm.Data, now)
		cm.Data[op.Payment] = string(data)
		if create {
			err = s.opts.Client.Create(ctx, cm, client.FieldOwner(FieldManager))
		} else {
			err = s.opts.Client.Update(ctx, cm, client.FieldOwner(FieldManager))
		}
		if (apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)) && backoff.Steps > 1 {
			select {
			case <-time.After(backoff.Step()):
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err != nil {
			return fmt.Errorf("remembering an early refund or dispute of %s: %w", op.Payment, err)
		}
		return nil
	}
}

func (earlyCharge) with(c account.ChargeState) earlyCharge {
	return earlyCharge{Amount: c.Amount, Refunded: c.Refunded, Dispute: c.Dispute, Status: c.DisputeStatus, Created: c.DisputeCreated}
}

// pruneEarly drops the entries past EarlyChargeRetention, and the oldest beyond
// EarlyChargesMax-1 (room for the one being written).
func pruneEarly(data map[string]string, now time.Time) map[string]string {
	type aged struct {
		key string
		at  int64
	}
	var kept []aged
	for k, v := range data {
		var e earlyCharge
		if json.Unmarshal([]byte(v), &e) == nil && now.Sub(time.Unix(e.At, 0)) <= EarlyChargeRetention {
			kept = append(kept, aged{k, e.At})
		}
	}
	slices.SortFunc(kept, func(x, y aged) int { return cmp.Compare(y.at, x.at) }) // newest first
	out := make(map[string]string, min(len(kept), EarlyChargesMax))
	for _, e := range kept[:min(len(kept), EarlyChargesMax-1)] {
		out[e.key] = data[e.key]
	}
	return out
}
