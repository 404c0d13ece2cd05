package migrate

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
)

// paymentLabels are obj's labels under account.PaymentLabelPrefix.
func paymentLabels(obj *creditsv1alpha1.UserCredits) []string {
	var out []string
	for name := range obj.Labels {
		if strings.HasPrefix(name, account.PaymentLabelPrefix) {
			out = append(out, name)
		}
	}
	return out
}

// TestImportedPurchaseLotsCarryTheirPaymentLabels: an export row's purchase lot names its
// PaymentIntent; imported (a new object, or over an existing one), the record must carry
// the payment's label, as every record whose lots name a payment does: a refund that
// misses a replica's cache (just imported) is confirmed by a label-selected LIST, and
// without the label it is answered "unmatched", which Stripe never delivers again. Labels
// of payments the overwritten lots named, and no row's lot names, go.
func TestImportedPurchaseLotsCarryTheirPaymentLabels(t *testing.T) {
	at := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	row := Row{UserID: "user_a", Credits: 7, Lots: []creditsv1alpha1.Lot{{ID: "lot-cs_1", Credits: 10, Remaining: 7, Priority: 50,
		Source: account.SourceStripe, Reference: "cs_1", Payment: "pi_1", GrantedAt: at}}}
	want := account.PaymentLabel("pi_1")

	obj := NewObject(row, "ns")
	if obj.Labels[want] != account.PaymentLabelValue {
		t.Errorf("a new object importing a purchase lot: labels %v, want %s", obj.Labels, want)
	}

	current := &creditsv1alpha1.UserCredits{
		ObjectMeta: metav1.ObjectMeta{Name: "a", UID: "uid-1", Generation: 4, ResourceVersion: "77",
			Labels: map[string]string{account.PaymentLabel("pi_old"): account.PaymentLabelValue, "team": "x"}},
		Spec: creditsv1alpha1.UserCreditsSpec{UserID: "user_a", Credits: 3, Lots: []creditsv1alpha1.Lot{{ID: "lot-cs_old", Credits: 3,
			Remaining: 3, Priority: 50, Source: account.SourceStripe, Reference: "cs_old", Payment: "pi_old", GrantedAt: at}}},
	}
	next := patched(t, current, row)
	if got := paymentLabels(next); len(got) != 1 || got[0] != want || next.Labels["team"] != "x" {
		t.Errorf("an import over an object: payment labels %v (all %v), want only %s", got, next.Labels, want)
	}
	bare := current.DeepCopy()
	bare.Labels = nil
	if next := patched(t, bare, row); next.Labels[want] != account.PaymentLabelValue {
		t.Errorf("an import over an object without labels: %v, want %s", next.Labels, want)
	}
}
