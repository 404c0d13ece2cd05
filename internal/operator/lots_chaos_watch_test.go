package operator_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/operator"
	"github.com/gitread/usercredits-operator/test/framework"
)

// object is cg as its manifest.
func (cg *chaosCreditGrant) object() *creditsv1alpha1.CreditGrant {
	obj := &creditsv1alpha1.CreditGrant{TypeMeta: metav1.TypeMeta{APIVersion: creditsv1alpha1.GroupVersion.String(), Kind: "CreditGrant"},
		ObjectMeta: metav1.ObjectMeta{Name: cg.name, Namespace: chaosNamespace},
		Spec:       creditsv1alpha1.CreditGrantSpec{UserID: cg.user, Credits: cg.credits, Priority: &cg.priority, Reason: "chaos promotion"}}
	if !cg.expires.IsZero() {
		obj.Spec.ExpiresAt = &metav1.Time{Time: cg.expires}
	}
	return obj
}

// do does action to cg, as a GitOps tool (or a crash) would, behind the replicas' backs.
func (cg *chaosCreditGrant) do(t *testing.T, action string) {
	ctx, key := context.Background(), client.ObjectKey{Namespace: chaosNamespace, Name: cg.name}
	var err error
	switch action {
	case cgCreate:
		err = k8sClient.Create(ctx, cg.object())
	case cgResync: // the same manifest applied again: nothing changes
		err = k8sClient.Patch(ctx, cg.object(), client.Apply, client.FieldOwner("argocd-controller"), client.ForceOwnership)
	case cgRecreate: // (a re-sync of the same CreditGrant may create it first: as two GitOps tools would)
		if err = client.IgnoreNotFound(k8sClient.Delete(ctx, cg.object())); err == nil {
			for !apierrors.IsNotFound(k8sClient.Get(ctx, key, &creditsv1alpha1.CreditGrant{})) {
				time.Sleep(20 * time.Millisecond)
			}
			if err = k8sClient.Create(ctx, cg.object()); apierrors.IsAlreadyExists(err) {
				err = nil
			}
		}
	case cgLoseStatus:
		for {
			var obj creditsv1alpha1.CreditGrant
			if err = k8sClient.Get(ctx, key, &obj); err != nil {
				break
			}
			obj.Status = creditsv1alpha1.CreditGrantStatus{}
			if err = k8sClient.Status().Update(ctx, &obj); !apierrors.IsConflict(err) {
				break
			}
		}
	}
	if err != nil {
		t.Errorf("CreditGrant %s: %s: %v", cg.name, action, err)
	}
}

// waitCreditGrantsSettled waits until every CreditGrant of p is Applied.
func waitCreditGrantsSettled(t *testing.T, p *chaosPlan) {
	t.Helper()
	framework.Eventually(t, 30*time.Second, func() error {
		for _, cg := range p.creditGrants {
			var obj creditsv1alpha1.CreditGrant
			if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: chaosNamespace, Name: cg.name}, &obj); err != nil {
				return err
			}
			if c := meta.FindStatusCondition(obj.Status.Conditions, creditsv1alpha1.ConditionApplied); c == nil || c.Status != metav1.ConditionTrue {
				return fmt.Errorf("CreditGrant %s: Applied %v", cg.name, c)
			}
		}
		return nil
	})
}

// lotsWatch follows every stored version of the chaos users' records: the lot invariant
// (never a negative balance among it) must hold in each; it notes when each lot was first
// seen closed as expired.
type lotsWatch struct {
	mu       sync.Mutex
	versions int
	broken   []string
	expired  map[string]time.Duration // user/lot → first seen closed this long after its expiry
}

func watchLots(t *testing.T, ctx context.Context, prefix string) *lotsWatch {
	t.Helper()
	wc, err := client.NewWithWatch(restCfg, client.Options{Scheme: operator.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	w := &lotsWatch{expired: map[string]time.Duration{}}
	started := make(chan struct{})
	go func() {
		for first := true; ctx.Err() == nil; first = false {
			wi, err := wc.Watch(ctx, &creditsv1alpha1.UserCreditsList{}, client.InNamespace(chaosNamespace))
			if first {
				close(started)
			}
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			for ev := range wi.ResultChan() {
				if obj, ok := ev.Object.(*creditsv1alpha1.UserCredits); ok && strings.HasPrefix(obj.Spec.UserID, prefix) {
					w.observe(obj)
				}
			}
			wi.Stop()
		}
	}()
	<-started
	return w
}

func (w *lotsWatch) observe(obj *creditsv1alpha1.UserCredits) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.versions++
	if err := lotInvariant(obj); err != nil && len(w.broken) < 10 {
		w.broken = append(w.broken, fmt.Sprintf("%s (resourceVersion %s): %v", obj.Spec.UserID, obj.ResourceVersion, err))
	}
	for _, l := range obj.Spec.Lots {
		id := obj.Spec.UserID + "/" + l.ID
		if _, seen := w.expired[id]; !seen && l.Closed == "expired" && l.ExpiresAt != nil {
			w.expired[id] = now.Sub(l.ExpiresAt.Time)
		}
	}
}
