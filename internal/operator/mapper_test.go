package operator

import (
	"errors"
	"sync/atomic"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// countingMapper answers one known kind and counts the questions.
type countingMapper struct {
	meta.RESTMapper
	calls atomic.Int32
}

func (c *countingMapper) RESTMapping(gk schema.GroupKind, _ ...string) (*meta.RESTMapping, error) {
	c.calls.Add(1)
	if gk.Kind != "UserCredits" {
		return nil, errors.New("no matches for kind")
	}
	return &meta.RESTMapping{Scope: meta.RESTScopeNamespace}, nil
}

func TestMemoRESTMapperKeepsAnswersNotFailures(t *testing.T) {
	inner := &countingMapper{}
	m := &memoRESTMapper{RESTMapper: inner, mappings: map[string]*meta.RESTMapping{}}
	gk := schema.GroupKind{Group: "credits.gitread.dev", Kind: "UserCredits"}
	for range 5 {
		mapping, err := m.RESTMapping(gk, "v1alpha1")
		if err != nil || mapping.Scope != meta.RESTScopeNamespace {
			t.Fatalf("mapping: %+v %v", mapping, err)
		}
	}
	if n := inner.calls.Load(); n != 1 {
		t.Fatalf("inner mapper asked %d times, want 1", n)
	}
	missing := schema.GroupKind{Group: "x", Kind: "NotYetInstalled"}
	for range 3 {
		if _, err := m.RESTMapping(missing); err == nil {
			t.Fatal("an unknown kind was mapped")
		}
	}
	if n := inner.calls.Load(); n != 4 {
		t.Fatalf("failures were remembered: inner mapper asked %d times, want 4", n)
	}
}
