package migrate

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
)

// Action is what an import does with one row, given what the cluster holds for its user.
type Action string

// Actions, in the order a summary lists them.
const (
	// Create: the user has no object; one is created with the row's balance.
	Create Action = "created"
	// AlreadyImported: the user's object records this very row (ImportedAnnotation): it
	// was written by this import before (an earlier run, or one that was killed), and is
	// left as it is now, whatever the API has done to it since.
	AlreadyImported Action = "already imported"
	// Unchanged: the user's object already has the row's balance (and holds and lots). The
	// object is marked with the row all the same (MarkPatch), so that the row counts as
	// imported from then on: a later run with --overwrite never takes back what the user
	// spent after it.
	Unchanged Action = "unchanged"
	// Differs: the user's object has another balance; left alone without --overwrite.
	Differs Action = "differs"
	// Overwrite: the user's balance becomes the row's (--overwrite).
	Overwrite Action = "overwritten"
	// Contested: several objects claim the user; the API serves none of them until a
	// person removes all but one, so the import writes none either.
	Contested Action = "contested"
)

// Existing is what the cluster holds for one user, as the import's LIST showed it.
type Existing struct {
	// Name is the user's object (the first, when several claim the user).
	Name string
	// Objects counts the objects that claim the user.
	Objects int
	// Imported is the digest of the row the object records having been written from; "" when none.
	Imported string
	// Credits is the available balance, Content a digest of the holds and lots.
	Credits int64
	Content string
}

// ExistingOf is what obj holds.
func ExistingOf(obj *creditsv1alpha1.UserCredits) Existing {
	ex := Existing{Name: obj.Name, Objects: 1, Credits: obj.Spec.Credits, Content: content(obj.Spec.Reservations, obj.Spec.Lots)}
	if i, ok := account.ImportedOf(obj); ok {
		ex.Imported = i.Row
	}
	return ex
}

// content is a digest of holds and lots, "" for none: two records whose content is equal
// hold the same holds and lots.
func content(holds []creditsv1alpha1.Reservation, lots []creditsv1alpha1.Lot) string {
	if len(holds) == 0 && len(lots) == 0 {
		return ""
	}
	return digest(jsonList(holds), jsonList(lots))
}

// digest is 64 bits of SHA-256 over parts, in hex: an import never meets two rows that
// share one by chance.
func digest(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(strconv.Itoa(len(p)))) // a length prefix: the parts never run together
		h.Write([]byte{':'})
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Digest identifies the row's content, whatever file or line it came from: what an
// imported object records (ImportedAnnotation), so that the same row is never written
// twice. A row that differs in anything (balance, time, holds, lots) is another row.
func (r Row) Digest() string {
	return digest(string(r.UserID), strconv.FormatInt(r.Credits, 10), FormatTime(r.UpdatedAt), jsonList(r.Holds), jsonList(r.Lots))
}

// sameAs reports whether the cluster already holds what r says: the same available
// balance and, when r carries them, the same holds and lots.
func (r Row) sameAs(ex Existing) bool {
	return r.Credits == ex.Credits && (!r.Full() || content(r.Holds, r.Lots) == ex.Content)
}

// Decide is what the import does with r, given the user's Existing record (nil: none).
func Decide(r Row, ex *Existing, overwrite bool) Action {
	switch {
	case ex == nil:
		return Create
	case ex.Objects > 1:
		return Contested
	case ex.Imported == r.Digest():
		return AlreadyImported
	case r.sameAs(*ex):
		return Unchanged
	case overwrite:
		return Overwrite
	}
	return Differs
}

// imported is the record an import's write puts on the object it writes, which that
// write gives generation.
func (r Row) imported(generation int64) string {
	i := account.Imported{Row: r.Digest(), Generation: generation}
	if !r.UpdatedAt.IsZero() {
		at := r.UpdatedAt
		i.UpdatedAt = &at
	}
	return i.Encode()
}

// NewObject is the object that imports r into namespace: under the name the API gives
// the user, with the label it puts on such objects, the row's balance, holds and lots as
// they are, and the record of the row (whose write gives it generation 1).
func NewObject(r Row, namespace string) *creditsv1alpha1.UserCredits {
	obj := &creditsv1alpha1.UserCredits{
		TypeMeta: metav1.TypeMeta{APIVersion: creditsv1alpha1.GroupVersion.String(), Kind: "UserCredits"},
		ObjectMeta: metav1.ObjectMeta{Name: account.ObjectNameForUser(string(r.UserID)), Namespace: namespace,
			Labels:      map[string]string{account.NameLabel: account.NameDerived},
			Annotations: map[string]string{account.ImportedAnnotation: r.imported(1)}},
		Spec: creditsv1alpha1.UserCreditsSpec{UserID: string(r.UserID), Credits: r.Credits, Reservations: r.Holds, Lots: r.Lots},
	}
	// A purchase lot's payment label, as every record whose lots name a payment carries
	// (account/paymentlabels.go): a refund missing a replica's cache finds the user by it.
	obj.Labels = account.WithPaymentLabels(obj.Labels, r.Lots)
	return obj
}

// OverwritePatch is the JSON patch that makes current's balance r's, decided at now. Its
// first operations test what the decision read (account.Tests), so that the apiserver
// refuses it if the API or anyone else changed the user meanwhile. A row of the credits
// table is a set of the available balance through the account model, as POST
// /api/credits makes it (holds stay open, the lots give or take the difference, the
// history records it); a row of this operator's export replaces the balance, holds and
// lots with its own. Either way the object records the row, in the same write.
func OverwritePatch(current *creditsv1alpha1.UserCredits, r Row, now time.Time) ([]byte, error) {
	ops := account.Tests(current)
	if r.Full() {
		if current.Annotations == nil {
			ops = append(ops, account.PatchOp{Op: "add", Path: "/metadata/annotations", Value: map[string]string{}})
		}
		ops = append(ops, account.PatchOp{Op: "add", Path: "/spec/credits", Value: r.Credits})
		ops = append(ops, replaceList("/spec/reservations", len(r.Holds) > 0, len(current.Spec.Reservations) > 0, r.Holds)...)
		ops = append(ops, replaceList("/spec/lots", len(r.Lots) > 0, len(current.Spec.Lots) > 0, r.Lots)...)
		ops = append(ops, account.PaymentLabelOps(current, r.Lots)...) // the payment labels of the lots written
	} else {
		acct, err := account.Decode(current)
		if err != nil {
			return nil, err
		}
		d := acct.ApplyAll(r.UserID, []account.Operation{{Kind: account.OpSet, Amount: r.Credits}}, now, account.DefaultSettings())
		if err := d.Answers[0].Err; err != nil {
			return nil, fmt.Errorf("setting the balance to %d: %w", r.Credits, err)
		}
		set, err := account.Patch(current, d.Account)
		if err != nil {
			return nil, err
		}
		ops = append(ops, set...)
	}
	// Any write of spec moves the generation by one: the import's write makes it this.
	ops = append(ops, account.PatchOp{Op: "add", Path: "/metadata/annotations/" + pointerEscape(account.ImportedAnnotation),
		Value: r.imported(current.Generation + 1)})
	return json.Marshal(ops)
}

// MarkPatch is the JSON patch that records on current that it holds r already: the
// record alone, under the same tests as an overwrite (so that it is refused if the user
// changed since current was read). It changes no spec, so the generation stays.
func MarkPatch(current *creditsv1alpha1.UserCredits, r Row) ([]byte, error) {
	ops := account.Tests(current)
	if current.Annotations == nil {
		ops = append(ops, account.PatchOp{Op: "add", Path: "/metadata/annotations", Value: map[string]string{}})
	}
	ops = append(ops, account.PatchOp{Op: "add", Path: "/metadata/annotations/" + pointerEscape(account.ImportedAnnotation),
		Value: r.imported(current.Generation)})
	return json.Marshal(ops)
}

// replaceList sets a list field to value, or removes it when the row has none and the
// object has one.
func replaceList(path string, want, has bool, value any) []account.PatchOp {
	switch {
	case want:
		return []account.PatchOp{{Op: "add", Path: path, Value: value}}
	case has:
		return []account.PatchOp{{Op: "remove", Path: path}}
	}
	return nil
}

// pointerEscape escapes a name for a JSON pointer (RFC 6901).
func pointerEscape(name string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(name)
}
