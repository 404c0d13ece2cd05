package account

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

// Where an account is stored in its UserCredits object: the balance and the open holds in
// spec (spec.credits, spec.reservations), the rest in annotations, each written in the same
// update as the balance it accounts for.
const (
	AppliedRequestsAnnotation = "credits.gitread.dev/applied-requests"
	AppliedGrantsAnnotation   = "credits.gitread.dev/applied-grants"
	ClosedHoldsAnnotation     = "credits.gitread.dev/closed-reservations"
	HistorySeqAnnotation      = "credits.gitread.dev/history-seq"
	historyChunkPrefix        = "credits.gitread.dev/history-"
	// WriteSeqAnnotation counts this operator's writes of the record: every write tests
	// and moves it (Tests), independently of the history.
	WriteSeqAnnotation = "credits.gitread.dev/write-seq"
	// GrantKeyDigestAnnotation holds the informer cache's stand-in for
	// AppliedGrantsAnnotation (CacheForm), and marks the cache's form of a record.
	GrantKeyDigestAnnotation = cacheOnly + "grant-key-digest"
	// cacheDamageAnnotation lists, in the informer cache's form, the damaged parts that form
	// does not hold (CacheForm), so that the account decoded from it still reports them.
	cacheDamageAnnotation = cacheOnly + "damaged"
	// cacheOnly begins the keys of the annotations only the informer cache's form has. It
	// is no qualified name (a space, a colon), so the apiserver refuses it as an annotation
	// key: no stored object can carry one, and nothing written with kubectl or by a GitOps
	// tool can make a record read from the apiserver pass for the cache's partial form.
	cacheOnly = "informer cache only: "
)

// maxSeq bounds the stored counts (history, write sequence): far beyond any real count,
// far enough from the int64 limit that counting on never wraps.
const maxSeq = 1 << 62

// NameLabel marks an object whose name is the one the API gives its user
// (ObjectNameForUser), with the value NameDerived: every object the API creates carries it,
// the API adds it when it writes such an object, and the controller adds it to such objects
// and removes it from others. Its absence is what a replica warming up lists (one cheap
// selection) to learn which users other objects claim: a GitOps tool's names, which a read
// by the derived name cannot see.
const (
	NameLabel   = "credits.gitread.dev/name"
	NameDerived = "derived"
)

// NameLabelWanted reports whether obj's name is its user's derived name, so that it should
// carry NameLabel, and whether it carries it now.
func NameLabelWanted(obj *creditsv1alpha1.UserCredits) (want, has bool) {
	return obj.Name == ObjectNameForUser(obj.Spec.UserID), obj.Labels[NameLabel] == NameDerived
}

// HistoryChunkAnnotation names history chunk k.
func HistoryChunkAnnotation(k int) string { return historyChunkPrefix + strconv.Itoa(k) }

// Bounds of each stored part, in bytes of its annotation: what the entry counts and sizes
// above allow, with room. Together with the rest they keep an object's annotations far
// below the apiserver's 256 KiB; a part over its bound is damaged on decode and never
// written (a decision producing one is refused).
var partBounds = map[string]int{
	AppliedRequestsAnnotation: 24 << 10,
	AppliedGrantsAnnotation:   160 << 10,
	ClosedHoldsAnnotation:     32 << 10,
	historyChunkPrefix:        4 << 10,
}

// Decode reads the account obj holds, in either of its forms: as stored, or as the
// informer cache keeps it (CacheForm), which only a key no stored object can carry marks.
// A record that breaks an invariant comes with an error wrapping ErrUntrusted; a part that
// cannot be read is listed in Damage and read as empty, or, for a history chunk, as the
// entries in it that can be read (the key ledgers excepted: a damaged ledger cannot guard
// against repeats, which makes the record untrusted).
func Decode(obj *creditsv1alpha1.UserCredits) (Account, error) {
	a := Account{UserID: UserID(obj.Spec.UserID), Available: obj.Spec.Credits, Holds: holdsOf(obj), Lots: lotsOf(obj)}
	ann := obj.Annotations
	var damaged bool
	a.requests.entries, a.requests.damaged = decodePart(ann, AppliedRequestsAnnotation, decodeKeys)
	// The ledger itself when the object holds it (the cache's form keeps a damaged one, so
	// that decoding it says so); else the cache's digest of it.
	if _, whole := ann[AppliedGrantsAnnotation]; whole {
		a.grants.entries, a.grants.damaged = decodePart(ann, AppliedGrantsAnnotation, decodeKeys)
	} else if digest, ok := ann[GrantKeyDigestAnnotation]; ok {
		a.grants = keyLedger{digest: digest, partial: true}
	}
	if a.closed.entries, damaged = decodePart(ann, ClosedHoldsAnnotation, decodeClosed); damaged {
		a.closed.damaged = true
		a.damage = append(a.damage, ClosedHoldsAnnotation)
	}
	a.history = decodeHistory(ann)
	a.damage = append(a.damage, a.history.damage()...)
	for name, l := range map[string]keyLedger{AppliedRequestsAnnotation: a.requests, AppliedGrantsAnnotation: a.grants} {
		if l.damaged {
			a.damage = append(a.damage, name)
		}
	}
	if text, ok := ann[WriteSeqAnnotation]; ok {
		if n, err := strconv.ParseInt(text, 10, 64); err == nil && n >= 0 && n <= maxSeq {
			a.writeSeq = n
		} else {
			a.damage = append(a.damage, WriteSeqAnnotation)
		}
	}
	slices.Sort(a.damage)
	return a, a.check()
}

// decodePart reads a list annotation with decode (ledgercodec.go); damaged when it is
// there but cannot be read or is over its bound.
func decodePart[T any](ann map[string]string, name string, decode func(string) ([]T, bool)) ([]T, bool) {
	text, ok := ann[name]
	if !ok || text == "" {
		return nil, false
	}
	if len(text) > partBounds[name] {
		return nil, true
	}
	entries, ok := decode(text)
	if !ok {
		return nil, true
	}
	return entries, false
}

// decodeHistory reads the history's count and the chunks it places, each judged on its
// own: a damaged chunk is marked and never costs another chunk its entries. In the cache's
// form, the damaged chunks that form does not hold are marked from its list of them
// (cacheDamageAnnotation); one the object does hold is judged by what it holds.
func decodeHistory(ann map[string]string) history {
	h := history{chunks: map[int]string{}}
	if text, ok := ann[HistorySeqAnnotation]; ok {
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil || n < 0 || n > maxSeq {
			return history{chunks: map[int]string{}, seqDamaged: true}
		}
		h.seq = n
	}
	for k := range historyChunks {
		text, ok := ann[HistoryChunkAnnotation(k)]
		held := h.held(k)
		switch {
		case !ok || held == 0:
			// none stored (a chunk deleted by hand is accepted as lost: the next entry of
			// it still goes to its place), or left from an earlier count: never read
		case len(text) > partBounds[historyChunkPrefix]:
			h.damaged |= 1 << k // read as empty: reading it would cost what its size does
		case !chunkReads(text, held):
			h.damaged |= 1 << k
			h.chunks[k] = text
		default:
			h.chunks[k] = text
		}
	}
	if list, ok := ann[cacheDamageAnnotation]; ok {
		for name := range strings.SplitSeq(list, ",") {
			number, isChunk := strings.CutPrefix(name, historyChunkPrefix)
			k, err := strconv.Atoi(number)
			if _, holds := ann[name]; isChunk && err == nil && k >= 0 && k < historyChunks && !holds {
				h.damaged |= 1 << k
			}
		}
	}
	return h
}

// damage names the history's damaged parts: the count, which makes the whole history
// unreadable, or each damaged chunk.
func (h *history) damage() []string {
	if h.seqDamaged {
		return []string{HistorySeqAnnotation}
	}
	var names []string
	for k := range historyChunks {
		if h.damaged&(1<<k) != 0 {
			names = append(names, HistoryChunkAnnotation(k))
		}
	}
	return names
}

// PatchOp is one RFC 6902 operation.
type PatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// Patch is the JSON patch operations that write a, decided on the record current, over it,
// after its preconditions (Tests): the parts the decision changed, the balance (always:
// writing it confirms the state it was decided on), the next write sequence, and NameLabel
// when current lacks it. It refuses an account that breaks an invariant or a part over its
// bound.
func Patch(current *creditsv1alpha1.UserCredits, a Account) ([]PatchOp, error) {
	set, err := a.changedAnnotations()
	if err != nil {
		return nil, err
	}
	var ops []PatchOp
	labelsAdded := false
	if want, has := NameLabelWanted(current); want && !has {
		// The label alone, never the map: the apiserver may hold labels current does not
		// show (kubectl label, a GitOps tool's tracking label), as the write sequence does
		// not move with them. The map is made only where Tests found none.
		if current.Labels == nil {
			ops = append(ops, PatchOp{Op: "add", Path: "/metadata/labels", Value: map[string]string{}})
			labelsAdded = true
		}
		ops = append(ops, PatchOp{Op: "add", Path: labelPath(NameLabel), Value: NameDerived})
	}
	ops = append(ops, paymentLabelOps(current, &a, labelsAdded)...)
	if current.Annotations == nil {
		ops = append(ops, PatchOp{Op: "add", Path: "/metadata/annotations", Value: map[string]string{}})
	}
	names := make([]string, 0, len(set))
	for name := range set {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		ops = append(ops, PatchOp{Op: "add", Path: annotationPath(name), Value: set[name]})
	}
	ops = append(ops, PatchOp{Op: "add", Path: "/spec/credits", Value: a.Available})
	if a.lotsChanged {
		switch lots := a.storedLots(); {
		case lots != nil:
			ops = append(ops, PatchOp{Op: "add", Path: "/spec/lots", Value: lots})
		case len(current.Spec.Lots) > 0:
			ops = append(ops, PatchOp{Op: "remove", Path: "/spec/lots"})
		}
	}
	if a.holdsChanged {
		switch {
		case len(a.Holds) > 0:
			ops = append(ops, PatchOp{Op: "add", Path: "/spec/reservations", Value: a.reservations()})
		case len(current.Spec.Reservations) > 0:
			ops = append(ops, PatchOp{Op: "remove", Path: "/spec/reservations"})
		}
	}
	return ops, nil
}

// NewObject is the record of an account that has none yet, named name in namespace.
func NewObject(name, namespace string, a Account) (*creditsv1alpha1.UserCredits, error) {
	set, err := a.changedAnnotations()
	if err != nil {
		return nil, err
	}
	obj := &creditsv1alpha1.UserCredits{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Annotations: set},
		Spec: creditsv1alpha1.UserCreditsSpec{UserID: string(a.UserID), Credits: a.Available, Reservations: a.reservations(),
			Lots: a.storedLots()},
	}
	if want, _ := NameLabelWanted(obj); want {
		obj.Labels = map[string]string{NameLabel: NameDerived}
	}
	obj.Labels = a.withPaymentLabels(obj.Labels)
	return obj, nil
}

// changedAnnotations encodes the parts a decision changed, and the next write sequence.
func (a *Account) changedAnnotations() (map[string]string, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	set := map[string]string{WriteSeqAnnotation: strconv.FormatInt(a.writeSeq+1, 10)}
	for name, part := range map[string]struct {
		changed bool
		text    func() (string, bool)
	}{
		AppliedRequestsAnnotation: {a.requests.changed, func() (string, bool) { return encodeKeys(a.requests.entries) }},
		AppliedGrantsAnnotation:   {a.grants.changed, func() (string, bool) { return encodeKeys(a.grants.entries) }},
		ClosedHoldsAnnotation:     {a.closed.changed, func() (string, bool) { return encodeClosed(a.closed.entries) }},
	} {
		if !part.changed {
			continue
		}
		text, ok := part.text()
		if !ok {
			return nil, fmt.Errorf("%w: %s would hold an entry that does not read back", ErrUntrusted, name)
		}
		if len(text) > partBounds[name] {
			return nil, fmt.Errorf("%w: %s would be %d bytes, over its bound of %d", ErrUntrusted, name, len(text), partBounds[name])
		}
		set[name] = text
	}
	for k := range historyChunks {
		if a.history.wrote&(1<<k) == 0 {
			continue
		}
		text := a.history.chunks[k]
		if len(text) > partBounds[historyChunkPrefix] {
			return nil, fmt.Errorf("%w: history chunk %d would be %d bytes", ErrUntrusted, k, len(text))
		}
		set[HistoryChunkAnnotation(k)] = text
		set[HistorySeqAnnotation] = strconv.FormatInt(a.history.seq, 10)
	}
	return set, nil
}

func (a *Account) reservations() []creditsv1alpha1.Reservation {
	if len(a.Holds) == 0 {
		return nil
	}
	out := make([]creditsv1alpha1.Reservation, len(a.Holds))
	for i, h := range a.Holds {
		out[i] = creditsv1alpha1.Reservation{ID: h.ID, Credits: h.Credits, ExpiresAt: metav1.NewTime(h.ExpiresAt)}
		for _, p := range h.From {
			out[i].From = append(out[i].From, creditsv1alpha1.LotCredits{Lot: p.Lot, Credits: p.Credits})
		}
	}
	return out
}

// Tests are the preconditions of every write to current, as JSON patch tests: the
// apiserver applies the write only if what its decision read is still what is stored.
//   - metadata.uid, so that an object deleted and created again under the same name
//     (kubectl replace --force, a GitOps tool), which may carry the old annotations, is
//     never taken for the one the decision read;
//   - metadata.generation, which moves with every change of spec by anyone (another
//     replica, kubectl, a GitOps tool), so the balance and holds are what it read;
//   - the write sequence, which every write of this operator moves, from any replica, so
//     the ledgers and the history are too; and the history's count while records written
//     by an earlier version (which moves only that) may be about. A record this operator
//     never wrote has neither: its resourceVersion is tested instead;
//   - that the object has no labels, when it had none (a write may make the label map,
//     Patch, for NameLabel or payment labels): the write would otherwise replace labels set since, which nothing above moves. A write
//     refused by it, or one adding the label to a map removed since, was decided on labels
//     a fresh read shows otherwise: TestedState tells the writer to decide again.
//
// Unlike a resourceVersion alone, these are not moved by the controller's status writes,
// which change nothing a decision reads.
func Tests(current *creditsv1alpha1.UserCredits) []PatchOp {
	ops := []PatchOp{
		{Op: "test", Path: "/metadata/uid", Value: current.UID},
		{Op: "test", Path: "/metadata/generation", Value: current.Generation},
	}
	sequenced := false
	for _, name := range []string{WriteSeqAnnotation, HistorySeqAnnotation} {
		if v, ok := current.Annotations[name]; ok {
			ops, sequenced = append(ops, PatchOp{Op: "test", Path: annotationPath(name), Value: v}), true
		}
	}
	if !sequenced {
		ops = append(ops, PatchOp{Op: "test", Path: "/metadata/resourceVersion", Value: current.ResourceVersion})
	}
	if current.Labels == nil {
		// A write may make the label map (NameLabel, payment labels): RFC 6902 test of null,
		// which the apiserver's patch library passes where the member is missing.
		ops = append(ops, PatchOp{Op: "test", Path: "/metadata/labels", Value: json.RawMessage("null")})
	}
	return ops
}

// TestedState is what Tests compare, and what Patch assumes of labels, as one comparable
// value: a write refused with 422 was stale when the next read shows a different
// TestedState, and refused for itself when it shows the same. It also holds the payment
// labels the record carries, which a write removes (paymentLabelOps) and which no test
// covers: a label someone else removed fails the removal with a 422 that is staleness,
// not the write's fault.
func TestedState(obj *creditsv1alpha1.UserCredits) string {
	var labels []string
	for name := range obj.Labels {
		if strings.HasPrefix(name, PaymentLabelPrefix) {
			labels = append(labels, name)
		}
	}
	slices.Sort(labels)
	data, _ := json.Marshal(struct {
		Tests  []PatchOp
		Labels []string `json:",omitempty"`
	}{Tests(obj), labels}) // cannot fail: plain values
	return string(data)
}

// annotationPath is the JSON pointer (RFC 6901) to an annotation.
func annotationPath(name string) string { return "/metadata/annotations/" + pointerEscape(name) }

// labelPath is the JSON pointer to a label.
func labelPath(name string) string { return "/metadata/labels/" + pointerEscape(name) }

func pointerEscape(name string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(name)
}

// Balance is what a read answers: the credits obj's user can spend at now, the record
// checked against the invariants. A record without lots or holds (most) is read without
// building anything: a GET is on the API's hottest path.
func Balance(obj *creditsv1alpha1.UserCredits, now time.Time) (int64, error) {
	if len(obj.Spec.Lots) == 0 && len(obj.Spec.Reservations) == 0 {
		if n := obj.Spec.Credits; n < 0 || n > MaxBalance {
			return 0, fmt.Errorf("%w: %d credits available, outside 0 to %d", ErrUntrusted, n, int64(MaxBalance))
		}
		return obj.Spec.Credits, nil
	}
	a, err := Summary(obj)
	return a.Spendable(now), err
}

// Summary is the account obj holds without its ledgers and history: the balance and the
// open holds, checked against the invariants. It is what a read needs, and what the
// controller judges; a decision decodes the whole account.
func Summary(obj *creditsv1alpha1.UserCredits) (Account, error) {
	a := Account{UserID: UserID(obj.Spec.UserID), Available: obj.Spec.Credits, Holds: holdsOf(obj), Lots: lotsOf(obj)}
	return a, a.check()
}

func holdsOf(obj *creditsv1alpha1.UserCredits) []Hold {
	if len(obj.Spec.Reservations) == 0 {
		return nil
	}
	holds := make([]Hold, len(obj.Spec.Reservations))
	for i, r := range obj.Spec.Reservations {
		holds[i] = Hold{ID: r.ID, Credits: r.Credits, ExpiresAt: r.ExpiresAt.Time}
		for _, p := range r.From {
			holds[i].From = append(holds[i].From, LotCredits{Lot: p.Lot, Credits: p.Credits})
		}
	}
	return holds
}
