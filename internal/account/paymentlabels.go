package account

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

// A refund or dispute names a payment, not its user: a replica finds the user in its index
// of the lots' PaymentIntents (credits/payers.go), built from its informer cache, which
// may lag (a replica starting, or whose watch is behind another replica's write). A miss
// there must be confirmed before Stripe is answered 200 "unmatched", which it never
// delivers again. So each record carries one label per PaymentIntent its lots name,
// PaymentLabel(pi), written in the same patch as the lots, and removed in the patch that
// drops the last lot naming it: a miss is confirmed by one label-selected LIST at the
// apiserver, which returns the record (if any) whose lots name the payment. Only labels
// under PaymentLabelPrefix are ever written or removed so: the others belong to others.
const (
	PaymentLabelPrefix = "payment.credits.gitread.dev/"
	// PaymentLabelValue is every payment label's value: the key says it all.
	PaymentLabelValue = "stripe"
)

// PaymentLabel is the label naming PaymentIntent pi: 128 bits of its SHA-256, as a label's
// name is at most 63 characters and a PaymentIntent ID's are not bounded by Stripe.
func PaymentLabel(pi string) string {
	sum := sha256.Sum256([]byte(pi))
	return PaymentLabelPrefix + hex.EncodeToString(sum[:16])
}

// paymentLabels are the payment labels a's lots call for, sorted.
func (a *Account) paymentLabels() []string {
	var out []string
	for i := range a.Lots {
		if p := a.Lots[i].Payment; p != "" {
			if l := PaymentLabel(p); !slices.Contains(out, l) {
				out = append(out, l)
			}
		}
	}
	slices.Sort(out)
	return out
}

// paymentLabelOps are the patch operations that make current's payment labels a's: add
// those missing, remove those no lot names any more; labels without the prefix are left
// alone. labelsAdded says whether an earlier operation of the patch adds the labels map.
func paymentLabelOps(current *creditsv1alpha1.UserCredits, a *Account, labelsAdded bool) []PatchOp {
	want := a.paymentLabels()
	var ops []PatchOp
	for _, name := range want {
		if _, ok := current.Labels[name]; ok {
			continue
		}
		if current.Labels == nil && !labelsAdded {
			ops = append(ops, PatchOp{Op: "add", Path: "/metadata/labels", Value: map[string]string{}})
			labelsAdded = true
		}
		ops = append(ops, PatchOp{Op: "add", Path: labelPath(name), Value: PaymentLabelValue})
	}
	var stale []string
	for name := range current.Labels {
		if strings.HasPrefix(name, PaymentLabelPrefix) && !slices.Contains(want, name) {
			stale = append(stale, name)
		}
	}
	slices.Sort(stale)
	for _, name := range stale {
		ops = append(ops, PatchOp{Op: "remove", Path: labelPath(name)})
	}
	return ops
}

// withPaymentLabels adds a's payment labels to labels (nil when there are none to add).
func (a *Account) withPaymentLabels(labels map[string]string) map[string]string {
	for _, name := range a.paymentLabels() {
		if labels == nil {
			labels = map[string]string{}
		}
		labels[name] = PaymentLabelValue
	}
	return labels
}

// PaymentLabelOps are the patch operations that make current's payment labels those the
// lots call for, for a write that stores lots as they are rather than through a decision
// (an import of an export row): add those missing, remove those no lot names.
func PaymentLabelOps(current *creditsv1alpha1.UserCredits, lots []creditsv1alpha1.Lot) []PatchOp {
	a := Account{Lots: lotsOf(&creditsv1alpha1.UserCredits{Spec: creditsv1alpha1.UserCreditsSpec{Lots: lots}})}
	return paymentLabelOps(current, &a, false)
}

// WithPaymentLabels adds to labels those the lots call for (nil when there are none to add).
func WithPaymentLabels(labels map[string]string, lots []creditsv1alpha1.Lot) map[string]string {
	a := Account{Lots: lotsOf(&creditsv1alpha1.UserCredits{Spec: creditsv1alpha1.UserCreditsSpec{Lots: lots}})}
	return a.withPaymentLabels(labels)
}
