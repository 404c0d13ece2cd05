package operator_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/gitread/usercredits-operator/internal/credits"
	"github.com/gitread/usercredits-operator/internal/operator"
	"github.com/gitread/usercredits-operator/test/framework"
)

func TestReadinessWaitsForCacheSync(t *testing.T) {
	c, err := cache.New(restCfg, cache.Options{Scheme: operator.NewScheme(), DefaultNamespaces: map[string]cache.Config{testNamespace: {}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	users := credits.NewIndex()
	if err := users.Register(ctx, c); err != nil {
		t.Fatal(err)
	}
	check := operator.CacheSynced(c, users)
	req := httptest.NewRequest("GET", "/readyz", nil)
	if err := check(req); err == nil {
		t.Fatal("ready before the cache was started")
	}
	go func() { _ = c.Start(ctx) }()
	framework.Eventually(t, 10*time.Second, func() error {
		if err := check(req); err != nil {
			return fmt.Errorf("not ready after start: %w", err)
		}
		return nil
	})
}
