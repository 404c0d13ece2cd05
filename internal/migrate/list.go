package migrate

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

// DefaultPageSize is how many objects one page of a LIST holds: small enough that no
// single answer is large at a million users, large enough that the pages cost little.
const DefaultPageSize = 1000

// maxListRestarts bounds how often a LIST starts over after its snapshot was compacted
// away between two pages (it takes an apiserver longer than five minutes to hand out).
const maxListRestarts = 3

// errSnapshotGone means a LIST's snapshot was compacted away before its last page.
var errSnapshotGone = errors.New("the LIST's snapshot expired before its last page")

// snapshot is one consistent LIST of a namespace's UserCredits, a page at a time: every
// page after the first is read at the first page's resourceVersion (the apiserver's
// continue tokens carry it), so together they are the namespace at one moment, however
// long the pages take and whatever is written meanwhile.
type snapshot struct {
	reader    client.Reader
	namespace string
	pageSize  int64
	// afterPage, when set, is called after each page but the last (tests write between pages).
	afterPage func(page int)
}

// each calls f with every object of one snapshot, a page at a time, and returns the
// snapshot's resourceVersion. When the snapshot expires midway, start is called and the
// LIST starts over at a new one (at most maxListRestarts times), so that f never sees
// two snapshots mixed.
func (s snapshot) each(ctx context.Context, start func(), f func(obj *creditsv1alpha1.UserCredits) error) (string, error) {
	pageSize := s.pageSize
	if pageSize <= 0 {
		pageSize = DefaultPageSize
	}
	for attempt := 0; ; attempt++ {
		start()
		rv, err := s.pages(ctx, pageSize, f)
		if !errors.Is(err, errSnapshotGone) || attempt == maxListRestarts {
			return rv, err
		}
	}
}

func (s snapshot) pages(ctx context.Context, pageSize int64, f func(obj *creditsv1alpha1.UserCredits) error) (string, error) {
	var rv, token string
	for page := 1; ; page++ {
		list := &creditsv1alpha1.UserCreditsList{}
		opts := []client.ListOption{client.InNamespace(s.namespace), client.Limit(pageSize)}
		if token != "" {
			opts = append(opts, client.Continue(token))
		}
		if err := s.reader.List(ctx, list, opts...); err != nil {
			if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
				return "", errSnapshotGone
			}
			return "", fmt.Errorf("listing UserCredits in %s: %w", s.namespace, err)
		}
		if page == 1 {
			rv = list.ResourceVersion
		}
		for i := range list.Items {
			if err := f(&list.Items[i]); err != nil {
				return "", err
			}
		}
		if token = list.Continue; token == "" {
			return rv, nil
		}
		if s.afterPage != nil {
			s.afterPage(page)
		}
	}
}
