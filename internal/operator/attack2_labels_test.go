package operator_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
)

// The API's patch of an object under the API's name that its decision saw without the name
// label (account.Patch) labels it: "add /metadata/labels {}" when the decision saw no
// labels, then "add /metadata/labels/credits.gitread.dev~1name". Labels are not among the
// write's preconditions (uid, generation, write sequence, history count), so what the
// decision saw of them may be stale, and both operations then go wrong. Objects last
// written by the previous version (a history count, no name label) are every user right
// after the upgrade, and stay so until the controller has labelled each of them (100,000
// patches at the client's QPS); a replica's watch lagging behind is what a loaded
// apiserver does. The attacks below make both happen with a proxy: the replica's watch
// lags lag, and its controller's patches (merge patches) wait longer than that.

const labelAttackLag = 2 * time.Second

// labelAttack starts a synced replica of a namespace of its own, then creates user's object
// as the previous version left it, with labels, and after half the watch's lag applies
// relabel to it (a merge patch of metadata, as kubectl label does). It returns the API's
// base URL and the object once the replica serves the object: its cache shows the object
// as created, without relabel.
func labelAttack(t *testing.T, ns, user string, labels map[string]string, relabel string) (string, *creditsv1alpha1.UserCredits) {
	t.Helper()
	ctx := context.Background()
	ns = attackNamespace(t, ns)
	proxy := newNamespacedProxy(t, ns, false, labelAttackLag, labelAttackLag)
	r := namespacedReplica(t, proxy, ns)
	base := r.base
	if !r.synced(30 * time.Second) {
		t.Fatal("the replica never synced")
	}
	obj := &creditsv1alpha1.UserCredits{
		ObjectMeta: metav1.ObjectMeta{Name: account.ObjectNameForUser(user), Namespace: ns, Labels: labels, Annotations: map[string]string{
			account.HistorySeqAnnotation:      "1",
			account.HistoryChunkAnnotation(0): "s,10,10," + strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10),
		}},
		Spec: creditsv1alpha1.UserCreditsSpec{UserID: user, Credits: 10},
	}
	if err := k8sClient.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	created := time.Now()
	time.Sleep(labelAttackLag / 2)
	if err := k8sClient.Patch(ctx, obj, client.RawPatch(types.MergePatchType, []byte(relabel))); err != nil {
		t.Fatal(err)
	}
	relabelled := time.Now()
	tok := tokenFor(t, user)
	for {
		if _, body := request(t, "GET", base+"/api/credits", tok, ""); body == `{"credits":10}` {
			break
		}
		if time.Since(created) > 10*time.Second {
			t.Fatal("the replica never showed the object")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if shown := time.Since(relabelled); shown >= labelAttackLag {
		t.Fatalf("the replica showed the object %v after the relabelling: its watch may show the relabelling too; the attack needs less than %v", shown, labelAttackLag)
	}
	return base, obj
}

// TestAttack2WriteWipesLabelsItsCacheDidNotShow: an object without labels as the replica's
// cache shows it, labelled since (kubectl label uc … plan=pro; a GitOps tool's tracking
// label): the API's next consume replaces the labels with its own one. The label someone
// else put there is gone, silently.
func TestAttack2WriteWipesLabelsItsCacheDidNotShow(t *testing.T) {
	user := "user_Attack2Labels1"
	base, obj := labelAttack(t, "attack2-labels-wiped", user, nil, `{"metadata":{"labels":{"plan":"pro"}}}`)
	if status, body := request(t, "POST", base+"/api/credits/consume", tokenFor(t, user), ""); status != 200 || body != `{"success":true,"credits":9}` {
		t.Fatalf("consume: %d %s", status, body)
	}
	got := &creditsv1alpha1.UserCredits{}
	if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(obj), got); err != nil {
		t.Fatal(err)
	}
	if got.Labels["plan"] != "pro" {
		t.Errorf("after a consume, the object's labels are %v: plan=pro, put there by kubectl before the consume was sent, is gone", got.Labels)
	}
}

// TestAttack2StaleLabelsTurnAWriteIntoA500: an object with a label as the replica's cache
// shows it (no name label yet), whose last label was removed since (kubectl label uc …
// plan-): the API's patch adds the name label under /metadata/labels, which the stored
// object no longer has. The apiserver refuses the patch (422); the write's preconditions
// have not moved, so the writer takes the refusal for the write's own fault and answers
// the consume 500, never deciding again on the object it has just read. Nothing about the
// consume is wrong: a replica whose cache is current answers it 200.
func TestAttack2StaleLabelsTurnAWriteIntoA500(t *testing.T) {
	user := "user_Attack2Labels2"
	base, obj := labelAttack(t, "attack2-labels-stale", user, map[string]string{"plan": "pro"}, `{"metadata":{"labels":{"plan":null}}}`)
	status, body := request(t, "POST", base+"/api/credits/consume", tokenFor(t, user), "")
	if status != 200 || body != `{"success":true,"credits":9}` {
		t.Errorf("consume of 1 of 10 credits, the object's last label removed a moment before: %d %s; want 200 {\"success\":true,\"credits\":9}", status, body)
	}
	got := &creditsv1alpha1.UserCredits{}
	if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(obj), got); err != nil {
		t.Fatal(err)
	}
	t.Logf("stored after the consume: %d credits, labels %v", got.Spec.Credits, got.Labels)
}
