package operator_test

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/controllers"
)

// CreditGrants in TestLotsMatchTheModel: a grant authored in Git is, to the model, a grant
// keyed by controllers.GrantKey(name) with source gitops and the CreditGrant's name as its
// reference. What the controllers (one per replica) answer is the Applied condition:
// Granted (a replay when its message says nothing was granted again), NameReused (the
// key's 409), Expired (the 400 of a past expiresAt).

// lotsModelLabel marks the CreditGrants of one run, to delete them at its end (deleting
// one never takes credits back).
const lotsModelLabel = "usercredits-test/lots-model"

// creditGrantOp is a CreditGrant for the user, with or without expiry, priority and reason.
func (r *lotsRun) creditGrantOp() refOp {
	op := r.grantOp()
	op.kind, op.name = "creditgrant", fmt.Sprintf("%s-s%d", r.cgPrefix, r.step)
	op.key = controllers.GrantKey(op.name)
	return op
}

// creditGrant is op as the manifest a GitOps tool applies.
func (r *lotsRun) creditGrant(op refOp) *creditsv1alpha1.CreditGrant {
	cg := &creditsv1alpha1.CreditGrant{
		ObjectMeta: metav1.ObjectMeta{Name: op.name, Namespace: testNamespace, Labels: map[string]string{lotsModelLabel: r.cgPrefix}},
		Spec:       creditsv1alpha1.CreditGrantSpec{UserID: r.user, Credits: op.n, Priority: op.priority, Reason: op.reason},
	}
	if !op.expires.IsZero() {
		cg.Spec.ExpiresAt = &metav1.Time{Time: op.expires}
	}
	return cg
}

// sendCreditGrant creates op's CreditGrant, or applies it again: pruned and re-created
// under its name (with the same terms, or, when op's differ, other ones), or with its
// status lost, as an operator killed between the user's write and the status write leaves
// it. It waits for the Applied condition and returns it as an answer.
func (r *lotsRun) sendCreditGrant(op refOp) served {
	key := client.ObjectKey{Namespace: testNamespace, Name: op.name}
	want := r.creditGrant(op)
	var old creditsv1alpha1.CreditGrant
	err := k8sClient.Get(lotsCtx, key, &old)
	switch {
	case err != nil && !apierrors.IsNotFound(err):
		return served{body: "reading the CreditGrant: " + err.Error()}
	case err == nil && reflect.DeepEqual(old.Spec, want.Spec) && r.rng.IntN(2) == 0:
		old.Status = creditsv1alpha1.CreditGrantStatus{}
		if err := k8sClient.Status().Update(lotsCtx, &old); err != nil {
			return served{body: "losing the status: " + err.Error()}
		}
		r.note("CreditGrant %s: its status lost", op.name)
	default:
		if err == nil {
			if err := k8sClient.Delete(lotsCtx, &old); err != nil {
				return served{body: "deleting the CreditGrant: " + err.Error()}
			}
			for apierrors.IsNotFound(k8sClient.Get(lotsCtx, key, &old)) == false {
				time.Sleep(20 * time.Millisecond)
			}
			r.note("CreditGrant %s: pruned", op.name)
		}
		if err := k8sClient.Create(lotsCtx, want); err != nil {
			return served{body: "creating the CreditGrant: " + err.Error()}
		}
	}
	r.requests++
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(30 * time.Millisecond) {
		var cg creditsv1alpha1.CreditGrant
		if err := k8sClient.Get(lotsCtx, key, &cg); err != nil {
			continue
		}
		c := meta.FindStatusCondition(cg.Status.Conditions, creditsv1alpha1.ConditionApplied)
		switch {
		case c == nil || c.Reason == creditsv1alpha1.ReasonRetrying:
		case c.Status == metav1.ConditionTrue && cg.Status.LotID != "":
			replayed := strings.Contains(c.Message, "nothing granted again")
			return served{200, "", r.checkCreditGrantLot(op, cg.Status.LotID, replayed)}
		case c.Reason == creditsv1alpha1.ReasonNameReused:
			return served{409, refBodyKeyReused, false}
		case c.Reason == creditsv1alpha1.ReasonExpired:
			return served{400, refBodyGrantExpired, false}
		default:
			return served{body: fmt.Sprintf("Applied %s %s: %s", c.Status, c.Reason, c.Message)}
		}
	}
	return served{body: "no outcome within 15 s"}
}

// checkCreditGrantLot: a CreditGrant applied again names the lot it made the first time;
// the first time, the lot of that reference in the user's record. It returns whether the
// answer is a replay: the first time, never. (Each replica's controller applies a new
// CreditGrant; when the one that replays the other's grant wins the status write, the
// status says "granted before" and the only Event is AlreadyGranted. That is a wording,
// not a second grant: the record and the lot show it granted once, and are checked.)
func (r *lotsRun) checkCreditGrantLot(op refOp, lot string, replayed bool) bool {
	if first, seen := r.cgLots[op.name]; seen {
		if lot != first {
			r.fail("creditgrant", "CreditGrant %s applied again names lot %s, the first time %s", op.name, lot, first)
		}
		return replayed
	}
	r.cgLots[op.name] = lot
	if replayed {
		r.cgRaces++
		r.note("CreditGrant %s: the other replica's replay wrote its status", op.name)
	}
	for _, l := range r.stored().Spec.Lots {
		if l.Reference == op.name && l.ID != lot {
			r.fail("creditgrant", "CreditGrant %s's status names lot %s, the user's record has its lot as %s", op.name, lot, l.ID)
		}
	}
	return false
}

// deleteCreditGrants deletes the run's CreditGrants, as a GitOps tool prunes them.
func deleteCreditGrants(prefix string) error {
	return k8sClient.DeleteAllOf(lotsCtx, &creditsv1alpha1.CreditGrant{}, client.InNamespace(testNamespace),
		client.MatchingLabels{lotsModelLabel: prefix})
}
