package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/auth"
	"github.com/gitread/usercredits-operator/internal/bench"
	"github.com/gitread/usercredits-operator/internal/credits"
)

func userID(prefix string, i int) string { return fmt.Sprintf("user_%s_%06d", prefix, i) }

// seed creates n validated UserCredits (status included, as a running controller leaves
// them) with concurrency writers, and returns how long it took.
func seed(ctx context.Context, c client.Client, namespace, prefix string, n, concurrency int, balance int64) (time.Duration, error) {
	var firstErr atomic.Value
	sum := bench.Do(ctx, "seed", n, concurrency, func(ctx context.Context, i int) int {
		if err := seedOne(ctx, c, namespace, userID(prefix, i), balance); err != nil {
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

func seedOne(ctx context.Context, c client.Client, namespace, user string, balance int64) error {
	obj := &creditsv1alpha1.UserCredits{
		ObjectMeta: metav1.ObjectMeta{Name: credits.ObjectNameForUser(user), Namespace: namespace},
		Spec:       creditsv1alpha1.UserCreditsSpec{UserID: user, Credits: balance},
	}
	if err := c.Create(ctx, obj); err != nil {
		return err
	}
	base := obj.DeepCopy()
	obj.Status = credits.Validate(obj, nil, metav1.Now()).Status
	return c.Status().Patch(ctx, obj, client.MergeFrom(base))
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

func getRequests(base string, toks []string) bench.Request {
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
func setRequests(base string, toks []string, offset int) bench.Request {
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
func rawPatches(ctx context.Context, c client.Client, namespace, prefix string, users, n, concurrency, offset int) bench.Summary {
	return bench.Do(ctx, "client-go merge patch (raw)", n, concurrency, func(ctx context.Context, i int) int {
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
func consumeBurst(ctx context.Context, base, token string, n int) bench.Summary {
	return bench.Run(ctx, fmt.Sprintf("%d concurrent consumes, one user", n), bench.NewClient(n), n, n, func(int) (*http.Request, error) {
		req, err := http.NewRequest("POST", "http://"+base+"/api/credits/consume", nil)
		if err == nil {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return req, err
	}, ok200)
}
