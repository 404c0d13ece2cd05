package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/controllers"
	"github.com/gitread/usercredits-operator/internal/auth"
	"github.com/gitread/usercredits-operator/internal/credits"
	"github.com/gitread/usercredits-operator/internal/operator"
)

func userID(prefix string, i int) string { return fmt.Sprintf("user_%s_%06d", prefix, i) }

// seed creates n validated UserCredits (status included, as a running controller leaves
// them), each with grantKeys applied grant keys, with concurrency writers, and returns how
// long it took.
func seed(ctx context.Context, c client.Client, namespace, prefix string, n, concurrency int, balance int64, grantKeys int) (time.Duration, error) {
	var firstErr atomic.Value
	now := time.Now()
	sum := Do(ctx, "seed", n, concurrency, func(ctx context.Context, i int) int {
		if err := seedOne(ctx, c, namespace, userID(prefix, i), balance, grantLedger(userID(prefix, i), grantKeys, now)); err != nil {
			firstErr.CompareAndSwap(nil, err)
			return -1
		}
		return 200
	}, ok200)
	if err, _ := firstErr.Load().(error); err != nil {
		return sum.Duration, fmt.Errorf("%d of %d objects failed, first: %w", sum.Errors, n, err)
	}
	return sum.Duration, nil
}

func seedOne(ctx context.Context, c client.Client, namespace, user string, balance int64, grants string) error {
	obj := &creditsv1alpha1.UserCredits{
		ObjectMeta: metav1.ObjectMeta{Name: credits.ObjectNameForUser(user), Namespace: namespace},
		Spec:       creditsv1alpha1.UserCreditsSpec{UserID: user, Credits: balance},
	}
	if grants != "" {
		obj.Annotations = map[string]string{credits.AppliedGrantsAnnotation: grants}
	}
	if err := c.Create(ctx, obj); err != nil {
		return err
	}
	base := obj.DeepCopy()
	obj.Status = controllers.Validate(obj, nil, metav1.Now(), 0).Status
	return c.Status().Patch(ctx, obj, client.MergeFrom(base))
}

// seedGrantKey is the Idempotency-Key of user's i-th seeded grant, as a checkout session ID.
func seedGrantKey(user string, i int) string { return fmt.Sprintf("cs_live_%s_%d", user, i) }

// seedGrantAmount is what every seeded grant granted.
const seedGrantAmount = 100

// grantLedger is the applied-grants annotation n keyed grants leave behind, in the
// format internal/credits writes (the scale run checks that a seeded key is replayed, so
// a drift in that format fails the benchmark instead of measuring records nobody reads).
func grantLedger(user string, n int, at time.Time) string {
	if n == 0 {
		return ""
	}
	entries := make([]map[string]any, n)
	for i := range entries {
		sum := sha256.Sum256([]byte(seedGrantKey(user, i)))
		entries[i] = map[string]any{"k": hex.EncodeToString(sum[:16]), "op": "grant", "n": seedGrantAmount, "r": seedGrantAmount * (i + 1), "t": at.Unix()}
	}
	data, _ := json.Marshal(entries)
	return string(data)
}

// tokens signs session tokens for users prefix_0 … prefix_{n-1}.
func tokens(signer *auth.Signer, prefix string, n int) ([]string, error) {
	out := make([]string, n)
	for i := range out {
		tok, err := signer.SessionToken(userID(prefix, i), 2*time.Hour)
		if err != nil {
			return nil, err
		}
		out[i] = tok
	}
	return out, nil
}

func getRequests(base string, toks []string) Request {
	return func(i int) (*http.Request, error) {
		req, err := http.NewRequest("GET", "http://"+base+"/api/credits", nil)
		if err == nil {
			req.Header.Set("Authorization", "Bearer "+toks[i%len(toks)])
		}
		return req, err
	}
}

// setRequests POSTs a new balance for user i%len(toks), distinct each time so every
// request writes.
func setRequests(base string, toks []string, offset int) Request {
	return func(i int) (*http.Request, error) {
		req, err := http.NewRequest("POST", "http://"+base+"/api/credits", strings.NewReader(fmt.Sprintf(`{"credits":%d}`, offset+i+1)))
		if err == nil {
			req.Header.Set("Authorization", "Bearer "+toks[i%len(toks)])
			req.Header.Set("Content-Type", "application/json")
		}
		return req, err
	}
}

// rawPatches is the reference for writes: the same balance changes as client-go merge
// patches straight to the apiserver, with the same concurrency.
func rawPatches(ctx context.Context, c client.Client, namespace, prefix string, users, n, concurrency, offset int) Summary {
	return Do(ctx, "client-go merge patch (raw)", n, concurrency, func(ctx context.Context, i int) int {
		obj := &creditsv1alpha1.UserCredits{ObjectMeta: metav1.ObjectMeta{
			Name: credits.ObjectNameForUser(userID(prefix, i%users)), Namespace: namespace}}
		patch := client.RawPatch("application/merge-patch+json", fmt.Appendf(nil, `{"spec":{"credits":%d}}`, offset+i+1))
		if err := c.Patch(ctx, obj, patch); err != nil {
			return -1
		}
		return 200
	}, ok200)
}

func ok200(status int) bool { return status == 200 }

// consumeBurst sends n concurrent consumes of 1 for one user at once.
func consumeBurst(ctx context.Context, base, token string, n int) Summary {
	return Run(ctx, fmt.Sprintf("%d concurrent consumes, one user", n), NewClient(n), n, n, func(int) (*http.Request, error) {
		req, err := http.NewRequest("POST", "http://"+base+"/api/credits/consume", nil)
		if err == nil {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return req, err
	}, ok200)
}

// replaysSeededGrant retries one of user's seeded grants through the operator at addr, as
// a ServiceAccount allowed to grant, and reports whether it was answered as a replay.
func replaysSeededGrant(ctx context.Context, cfg *rest.Config, addr, namespace, user string) (bool, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return false, err
	}
	const name = "bench-granter"
	if _, err := cs.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		return false, err
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{creditsv1alpha1.GroupVersion.Group}, Resources: []string{"usercredits"}, Verbs: []string{"grant"}}}}
	if _, err := cs.RbacV1().Roles(namespace).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		return false, err
	}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: namespace}}}
	if _, err := cs.RbacV1().RoleBindings(namespace).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		return false, err
	}
	tr, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{operator.DefaultServiceAccountAudience}}}, metav1.CreateOptions{})
	if err != nil {
		return false, err
	}
	req, err := http.NewRequest("POST", "http://"+addr+"/api/credits/grant?userId="+user, strings.NewReader(fmt.Sprintf(`{"credits":%d}`, seedGrantAmount)))
	if err != nil {
		return false, err
	}
	req.Header.Set("Authorization", "Bearer "+tr.Status.Token)
	req.Header.Set("Idempotency-Key", seedGrantKey(user, 0))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Printf("  retried seeded grant: %d %s (Idempotent-Replayed: %q)\n", resp.StatusCode, body, resp.Header.Get("Idempotent-Replayed"))
	return resp.StatusCode == 200 && resp.Header.Get("Idempotent-Replayed") == "true", nil
}
