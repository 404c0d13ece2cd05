package migrate

// Against a real kube-apiserver and etcd (started by the tests that need one, so that the
// pure tests of this package run without): the export's one snapshot, and the import's
// writes when the cluster changed since its LIST.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/test/framework"
)

// startCluster starts a control plane with namespace, stopped when t ends.
func startCluster(t *testing.T, namespace string) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(scheme), creditsv1alpha1.AddToScheme(scheme)); err != nil {
		t.Fatal(err)
	}
	cluster, err := framework.StartCluster(scheme, framework.ClusterOptions{Namespaces: []string{namespace}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Stop() })
	return cluster.Client
}

func seedUser(t *testing.T, c client.Client, namespace, user string, credits int64) *creditsv1alpha1.UserCredits {
	t.Helper()
	obj := &creditsv1alpha1.UserCredits{ObjectMeta: metav1.ObjectMeta{Name: "obj-" + strings.ReplaceAll(user, "_", "-"), Namespace: namespace},
		Spec: creditsv1alpha1.UserCreditsSpec{UserID: user, Credits: credits}}
	if err := c.Create(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

func TestCluster(t *testing.T) {
	const ns = "migrate"
	c := startCluster(t, ns)
	ctx := context.Background()
	var seeded []*creditsv1alpha1.UserCredits
	for i := range 7 {
		seeded = append(seeded, seedUser(t, c, ns, fmt.Sprintf("user_%d", i), int64(i)))
	}

	t.Run("the export is one snapshot, however the pages are interleaved with writes", func(t *testing.T) {
		pages := 0
		ex := &Exporter{Reader: c, Namespace: ns, PageSize: 2, afterPage: func(page int) {
			pages++
			if page != 1 {
				return
			}
			// Between the first page and the rest: a balance changes, a user comes, one goes.
			changed := seeded[5].DeepCopy()
			changed.Spec.Credits = 100
			if err := c.Update(ctx, changed); err != nil {
				t.Error(err)
			}
			seedUser(t, c, ns, "user_late", 1)
			if err := c.Delete(ctx, seeded[6]); err != nil {
				t.Error(err)
			}
		}}
		snap, err := ex.Run(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if pages < 3 {
			t.Fatalf("read in %d pages: the test needs several", pages+1)
		}
		var got []string
		for _, r := range snap.Rows {
			got = append(got, fmt.Sprintf("%s=%d", r.UserID, r.Credits))
		}
		want := "[user_0=0 user_1=1 user_2=2 user_3=3 user_4=4 user_5=5 user_6=6]"
		if fmt.Sprint(got) != want {
			t.Errorf("exported %v, want the namespace as the first page found it: %s", got, want)
		}
		if snap.ResourceVersion == "" {
			t.Error("no resourceVersion")
		}
		later, err := (&Exporter{Reader: c, Namespace: ns, PageSize: 2}).Run(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(later.Rows); n != 7 || later.Rows[5].Credits != 100 || later.Rows[6].UserID != "user_late" {
			t.Errorf("a later export: %+v", later.Rows)
		}
	})

	t.Run("a row whose user was created after the LIST is decided on what is there", func(t *testing.T) {
		im := &Importer{Client: c, Namespace: ns}
		row := Row{UserID: "user_race", Credits: 9}
		// Another run of the same import created it first: found, not written again.
		if err := c.Create(ctx, NewObject(row, ns)); err != nil {
			t.Fatal(err)
		}
		if o := im.write(ctx, Outcome{Row: row, Action: Create}); o.Action != AlreadyImported || o.Err != nil {
			t.Errorf("created by another run: %s, %v", o.Action, o.Err)
		}
		// The API created it, with another balance: left alone, or with --overwrite replaced.
		other := Row{UserID: "user_race", Credits: 3}
		if o := im.write(ctx, Outcome{Row: other, Action: Create}); o.Action != Differs || o.Was != 9 || o.Err != nil {
			t.Errorf("another balance: %s (was %d), %v", o.Action, o.Was, o.Err)
		}
		im.Overwrite = true
		if o := im.write(ctx, Outcome{Row: other, Action: Create}); o.Action != Overwrite || o.Err != nil {
			t.Errorf("another balance, --overwrite: %s, %v", o.Action, o.Err)
		}
		// Deleted after the LIST showed it: created again.
		if err := c.Delete(ctx, seeded[0]); err != nil {
			t.Fatal(err)
		}
		back := Row{UserID: "user_0", Credits: 50}
		if o := im.write(ctx, Outcome{Row: back, Action: Overwrite, Object: seeded[0].Name}); o.Action != Create || o.Err != nil {
			t.Errorf("deleted since the LIST: %s, %v", o.Action, o.Err)
		}
		res, err := (&Importer{Client: c, Namespace: ns}).Run(ctx, []Row{{UserID: "user_race", Credits: 3}, back})
		if err != nil || res.Counts[AlreadyImported] != 2 || res.Writes() != 0 {
			t.Errorf("a run after them: %+v, %v", res.Counts, err)
		}
	})

	t.Run("a user who had the row's balance already is imported from then on", func(t *testing.T) {
		row := Row{UserID: "user_2", Credits: 2}
		res, err := (&Importer{Client: c, Namespace: ns}).Run(ctx, []Row{row})
		if err != nil || res.Counts[Unchanged] != 1 || len(res.Failed) != 0 {
			t.Fatalf("first run: %+v, %v", res, err)
		}
		// The user spends; an import of the same row with --overwrite never gives it back.
		obj := &creditsv1alpha1.UserCredits{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(seeded[2]), obj); err != nil {
			t.Fatal(err)
		}
		obj.Spec.Credits = 1
		if err := c.Update(ctx, obj); err != nil {
			t.Fatal(err)
		}
		res, err = (&Importer{Client: c, Namespace: ns, Overwrite: true}).Run(ctx, []Row{row})
		if err != nil || res.Counts[AlreadyImported] != 1 || res.Writes() != 0 {
			t.Errorf("second run: %+v, %v", res.Counts, err)
		}
		if err := c.Get(ctx, client.ObjectKeyFromObject(seeded[2]), obj); err != nil || obj.Spec.Credits != 1 {
			t.Errorf("user_2 has %d credits, want the 1 left after spending (%v)", obj.Spec.Credits, err)
		}
	})

	t.Run("an interrupted run writes nothing more and says what is left", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		rows := []Row{{UserID: "user_int_1", Credits: 1}, {UserID: "user_int_2", Credits: 2}, {UserID: "user_1", Credits: 1}}
		im := &Importer{Client: c, Namespace: ns, Concurrency: 2, Observer: cancelOnPlan{cancel}}
		res, err := im.Run(ctx, rows)
		if err != nil {
			t.Fatal(err)
		}
		if res.NotDone != 3 || res.Counts[Unchanged] != 0 || res.Writes() != 0 || len(res.Failed) != 0 {
			t.Errorf("interrupted: %+v", res)
		}
		if !strings.HasPrefix(res.closing(), "Interrupted after 0 writes: 3 rows are not written.") {
			t.Errorf("closing: %s", res.closing())
		}
		users := map[string]bool{}
		list := &creditsv1alpha1.UserCreditsList{}
		if err := c.List(context.Background(), list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		for _, obj := range list.Items {
			users[obj.Spec.UserID] = true
		}
		if users["user_int_1"] || users["user_int_2"] {
			t.Errorf("written after the interruption: %v", users)
		}
	})
}

// cancelOnPlan interrupts an import as soon as it has planned (a Ctrl-C before any write).
type cancelOnPlan struct{ cancel context.CancelFunc }

func (c cancelOnPlan) Planned(int, int) { c.cancel() }
func (c cancelOnPlan) Done(Outcome)     {}
