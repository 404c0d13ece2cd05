package main

// Seeding straight into etcd. Creating objects through the apiserver (seed, a create and a
// status patch each) runs at ~110 objects/s here: 15 minutes for the scale run's 100,000
// and hours for the 1,000,000 of make bench SCALE=1000000. Seeding is set-up, not what is
// measured, so the large sets are written to etcd in the form the apiserver stores them,
// in batched transactions, and the apiserver's watch cache picks them up as it would any
// other write; waitServed then checks that the apiserver serves them.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/auth"
	"github.com/gitread/usercredits-operator/internal/migrate"
	"github.com/gitread/usercredits-operator/test/framework"
)

const (
	// usercreditsResource is the CRD's plural, the resource of its storage keys.
	usercreditsResource = "usercredits"
	// seedManager is the field manager the seeded objects name, as the bench's own
	// apiserver writes do (its binary's name).
	seedManager = "bench"
	// etcdBatch objects go in one transaction: under etcd's --max-txn-ops (128) and, at
	// ~3.5 KiB an object, its 1.5 MiB request limit.
	etcdBatch = 100
	// etcdWriters transactions are in flight at once.
	etcdWriters = 8
	// benchEtcdQuota is the bench clusters' etcd --quota-backend-bytes: the default 2 GiB
	// does not hold a million scale objects.
	benchEtcdQuota = 8 << 30
)

// registryKey is where envtest's kube-apiserver (its default --etcd-prefix, /registry)
// stores the UserCredits namespace/name: /registry/<group>/<plural>/<namespace>/<name>.
func registryKey(namespace, name string) string {
	return "/registry/" + creditsv1alpha1.GroupVersion.Group + "/" + usercreditsResource + "/" + namespace + "/" + name
}

// storedValue is obj as the apiserver stores a UserCredits it created at `at` under uid:
// JSON of the whole object with apiVersion and kind, generation 1, the managedFields of a
// create by manager (and of a status write, when obj has a status; none when manager is
// ""), no resourceVersion (etcd's revision is the object's resourceVersion), ended by a
// newline as the apiserver's encoder ends it. obj is not changed.
func storedValue(obj *creditsv1alpha1.UserCredits, uid types.UID, at time.Time, manager string) ([]byte, error) {
	o := obj.DeepCopy()
	o.APIVersion, o.Kind = creditsv1alpha1.GroupVersion.String(), "UserCredits"
	t := metav1.NewTime(at.UTC().Truncate(time.Second))
	o.UID, o.CreationTimestamp, o.Generation, o.ResourceVersion, o.ManagedFields = uid, t, 1, "", nil
	if manager != "" {
		mf, err := managedFields(o, manager, t)
		if err != nil {
			return nil, err
		}
		o.ManagedFields = mf
	}
	data, err := json.Marshal(o)
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// managedFields are the entries the apiserver records for obj created by manager (its
// labels, annotations and spec) and, when it has a status, for manager's status write.
func managedFields(obj *creditsv1alpha1.UserCredits, manager string, at metav1.Time) ([]metav1.ManagedFieldsEntry, error) {
	spec, err := fieldSetOf(obj.Spec)
	if err != nil {
		return nil, err
	}
	meta := map[string]any{}
	for name, m := range map[string]map[string]string{"f:labels": obj.Labels, "f:annotations": obj.Annotations} {
		if len(m) > 0 {
			set := map[string]any{".": map[string]any{}}
			for k := range m {
				set["f:"+k] = map[string]any{}
			}
			meta[name] = set
		}
	}
	created := map[string]any{"f:spec": spec}
	if len(meta) > 0 {
		created["f:metadata"] = meta
	}
	entries := []map[string]any{created}
	if obj.Status.Conditions != nil || obj.Status.UpdatedAt != nil {
		status, err := fieldSetOf(obj.Status)
		if err != nil {
			return nil, err
		}
		entries = append(entries, map[string]any{"f:status": status})
	}
	out := make([]metav1.ManagedFieldsEntry, len(entries))
	for i, set := range entries {
		raw, err := json.Marshal(set)
		if err != nil {
			return nil, err
		}
		out[i] = metav1.ManagedFieldsEntry{Manager: manager, Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: creditsv1alpha1.GroupVersion.String(),
			Time: &at, FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: raw}}
	}
	if len(out) == 2 {
		out[1].Subresource = "status"
	}
	return out, nil
}

// listKeys are the keys of this API's map lists (+listMapKey); every other list is atomic.
var listKeys = map[string]string{"conditions": "type", "reservations": "id"}

// fieldSetOf is the FieldsV1 set of the fields v holds, as JSON.
func fieldSetOf(v any) (map[string]any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	return fieldSet(m, ""), nil
}

func fieldSet(v any, field string) map[string]any {
	set := map[string]any{}
	switch t := v.(type) {
	case map[string]any:
		set["."] = map[string]any{}
		for k, sub := range t {
			set["f:"+k] = fieldSet(sub, k)
		}
	case []any:
		key, keyed := listKeys[field]
		if !keyed {
			return set
		}
		set["."] = map[string]any{}
		for _, item := range t {
			m, _ := item.(map[string]any)
			k, _ := json.Marshal(map[string]any{key: m[key]})
			set["k:"+string(k)] = fieldSet(item, "")
		}
	}
	return set
}

// seedScale writes the scale run's objects straight into etcd (etcdSeeder), waits until
// the apiserver serves them, and returns how long both took, etcd's size then, and the
// GETs of 2000 of their users, spread over the whole range. The tokens are signed before
// any operator starts: the first request goes out as /readyz answers.
func seedScale(ctx context.Context, cluster *framework.Cluster, signer *auth.Signer, scale int) (time.Duration, int64, [][]byte, error) {
	step(fmt.Sprintf("scale: writing %d UserCredits into etcd (status, %d applied grant keys and a %d-entry history each)", scale, scaleGrantKeys, historyEntries))
	s, err := newEtcdSeeder(cluster, scaleManager(scale))
	if err != nil {
		return 0, 0, nil, err
	}
	defer s.close()
	now := time.Now()
	build := func(i int) *creditsv1alpha1.UserCredits {
		return judged(seededObject("scale", userID("scale", i), seeding{balance: 5, grantKeys: scaleGrantKeys, history: true}, now), now)
	}
	took, rev, err := s.create(ctx, scale, build)
	if err != nil {
		return took, 0, nil, err
	}
	caught, err := s.waitServed(ctx, "scale", rev, scale, build(scale/2))
	if err != nil {
		return took, 0, nil, err
	}
	size, err := s.dbSize(ctx)
	if err != nil {
		return took, 0, nil, err
	}
	fmt.Printf("  wrote %d objects in %v (%.0f/s); the apiserver served them %v later; etcd: %.0f MiB\n", scale, took.Round(time.Second),
		float64(scale)/took.Seconds(), caught.Round(100*time.Millisecond), float64(size)/(1<<20))
	spread := make([]string, 2000)
	for i := range spread {
		j := (i * max(1, scale/len(spread))) % scale
		if spread[i], err = signer.SessionToken(userID("scale", j), 2*time.Hour); err != nil {
			return took, size, nil, err
		}
	}
	return took + caught, size, getRequests(spread), nil
}

// seedUnjudged writes n objects straight into etcd (etcdSeeder) as `kubectl credits import`
// creates them (migrate.NewObject: the API's name and label, the imported row's record),
// without a status, and waits until the apiserver serves them beside the namespace's
// other users.
func seedUnjudged(ctx context.Context, cluster *framework.Cluster, ns string, n, others int) (time.Duration, error) {
	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	build := func(i int) *creditsv1alpha1.UserCredits {
		row := migrate.Row{UserID: account.UserID(userID("unjudged", i)), Credits: int64(i % 1000), UpdatedAt: at.Add(time.Duration(i) * time.Second)}
		return migrate.NewObject(row, ns)
	}
	s, err := newEtcdSeeder(cluster, seedManager)
	if err != nil {
		return 0, err
	}
	defer s.close()
	took, rev, err := s.create(ctx, n, build)
	if err != nil {
		return took, err
	}
	caught, err := s.waitServed(ctx, ns, rev, n+others, build(n/2))
	return took + caught, err
}

// scaleManager is the field manager the scale objects name in their managedFields, as the
// apiserver would record seed's writes; above bareAbove objects they have none: their
// managedFields alone held 44 % of kube-apiserver's heap at 100,000 (615 of 1,381 MiB: its
// watch cache holds every object, managedFields decoded), which at a million would take
// more memory than this 24 GiB machine has beside etcd and the operator. The operator drops
// them from its cache either way; without them the list it reads is smaller.
func scaleManager(scale int) string {
	if scale > bareAbove {
		return ""
	}
	return seedManager
}

// bareAbove is the largest scale whose objects carry managedFields (scaleManager).
const bareAbove = defaultScale

// etcdSeeder writes UserCredits straight into a cluster's etcd.
type etcdSeeder struct {
	cluster *framework.Cluster
	etcd    *clientv3.Client
	// manager is the field manager of the objects' managedFields; "" writes none.
	manager string
}

// newEtcdSeeder connects to cluster's etcd; the objects it writes name manager in their
// managedFields ("": none).
func newEtcdSeeder(cluster *framework.Cluster, manager string) (*etcdSeeder, error) {
	e := cluster.Env.ControlPlane.Etcd
	if e == nil || e.URL == nil {
		return nil, fmt.Errorf("the control plane has no etcd address")
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{e.URL.String()}, DialTimeout: 10 * time.Second,
		MaxCallSendMsgSize: 4 << 20})
	if err != nil {
		return nil, err
	}
	return &etcdSeeder{cluster: cluster, etcd: c, manager: manager}, nil
}

func (s *etcdSeeder) close() { _ = s.etcd.Close() }

// create writes objects build(0) … build(n-1) (each a new object: a name already taken
// fails the batch, as a create would) and returns how long that took and the last
// revision written.
func (s *etcdSeeder) create(ctx context.Context, n int, build func(i int) *creditsv1alpha1.UserCredits) (time.Duration, int64, error) {
	start := time.Now()
	var next, done, lastRev atomic.Int64
	var firstErr error
	var once sync.Once
	fail := func(err error) { once.Do(func() { firstErr = err }) }
	batches := (n + etcdBatch - 1) / etcdBatch
	var wg sync.WaitGroup
	for range etcdWriters {
		wg.Go(func() {
			for b := int(next.Add(1) - 1); b < batches && ctx.Err() == nil; b = int(next.Add(1) - 1) {
				rev, err := s.putBatch(ctx, b*etcdBatch, min(n, (b+1)*etcdBatch), build)
				if err != nil {
					fail(err)
					return
				}
				for old := lastRev.Load(); rev > old && !lastRev.CompareAndSwap(old, rev); old = lastRev.Load() {
				}
				if d := done.Add(1); n >= 100_000 && d%int64(batches/10) == 0 {
					fmt.Printf("  %d of %d objects in etcd after %v\n", min(n, int(d)*etcdBatch), n, time.Since(start).Round(time.Second))
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start), lastRev.Load(), firstErr
}

// putBatch writes objects [from, to) in one transaction that fails if any of their keys
// exists, and returns its revision.
func (s *etcdSeeder) putBatch(ctx context.Context, from, to int, build func(i int) *creditsv1alpha1.UserCredits) (int64, error) {
	now := time.Now()
	cmps := make([]clientv3.Cmp, 0, to-from)
	puts := make([]clientv3.Op, 0, to-from)
	for i := from; i < to; i++ {
		obj := build(i)
		value, err := storedValue(obj, types.UID(uuid.NewString()), now, s.manager)
		if err != nil {
			return 0, err
		}
		key := registryKey(obj.Namespace, obj.Name)
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
		puts = append(puts, clientv3.OpPut(key, string(value)))
	}
	resp, err := s.etcd.Txn(ctx).If(cmps...).Then(puts...).Commit()
	if err != nil {
		return 0, fmt.Errorf("etcd transaction of objects %d–%d: %w", from, to-1, err)
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("objects %d–%d: one of their names is taken", from, to-1)
	}
	return resp.Header.Revision, nil
}

// waitServed waits until the apiserver's watch cache has reached revision rev (every
// object written up to it is served, from the cache) and checks that it serves want
// UserCredits in namespace, and probe as written: it returns how long the wait took.
func (s *etcdSeeder) waitServed(ctx context.Context, namespace string, rev int64, want int, probe *creditsv1alpha1.UserCredits) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(5*time.Minute + time.Duration(want)*time.Millisecond)
	for {
		have, err := framework.WatchCacheResourceVersion(ctx, s.cluster.Config, creditsv1alpha1.GroupVersion.Group, usercreditsResource)
		if err != nil {
			return 0, err
		}
		if have >= rev {
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("the apiserver's watch cache is at revision %d, %v after the seeding reached %d", have, time.Since(start).Round(time.Second), rev)
		}
		time.Sleep(time.Second) // the apiserver's /metrics is large: parsing it competes with the catch-up
	}
	took := time.Since(start)
	c := s.cluster.Client
	list := &creditsv1alpha1.UserCreditsList{}
	if err := c.List(ctx, list, client.InNamespace(namespace), client.Limit(1)); err != nil {
		return took, err
	}
	n := len(list.Items)
	if list.RemainingItemCount != nil {
		n += int(*list.RemainingItemCount)
	}
	if n != want {
		return took, fmt.Errorf("the apiserver lists %d UserCredits in %s, want %d", n, namespace, want)
	}
	got := &creditsv1alpha1.UserCredits{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(probe), got); err != nil {
		return took, fmt.Errorf("GET of a seeded object: %w", err)
	}
	if got.Spec.UserID != probe.Spec.UserID || got.Spec.Credits != probe.Spec.Credits || got.Status.Credits != probe.Status.Credits ||
		!slices.Equal(conditionTypes(got), conditionTypes(probe)) || len(got.Annotations) != len(probe.Annotations) || got.Generation != 1 {
		return took, fmt.Errorf("the apiserver serves %s as %+v %+v, written as %+v %+v", probe.Name, got.Spec, got.Status, probe.Spec, probe.Status)
	}
	return took, nil
}

func conditionTypes(obj *creditsv1alpha1.UserCredits) []string {
	var out []string
	for _, c := range obj.Status.Conditions {
		out = append(out, c.Type+"="+string(c.Status))
	}
	return out
}

// dbSize is etcd's database size in bytes (its status: the file, free pages included).
func (s *etcdSeeder) dbSize(ctx context.Context) (int64, error) {
	ep := s.etcd.Endpoints()[0]
	st, err := s.etcd.Status(ctx, ep)
	if err != nil {
		return 0, err
	}
	return st.DbSize, nil
}
