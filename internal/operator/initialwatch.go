package operator

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	toolscache "k8s.io/client-go/tools/cache"
)

// initialEventsTimeout bounds the watch that streams an informer's first list (a watch
// with sendInitialEvents). client-go gives every watch a random 5 to 10 minutes; the
// apiserver ends it then, initial events sent or not, and the informer starts its list
// again from nothing. At 1,000,000 users the stream takes about 7 minutes here (make bench
// SCALE=1000000), so a replica drew lots until one fit, or never synced. An hour leaves
// the stream room at several times that; later watches keep client-go's timeouts.
const initialEventsTimeout = time.Hour

// newInformer is the manager cache's informer constructor: client-go's, over a
// patientInitialWatch.
func newInformer(lw toolscache.ListerWatcher, obj runtime.Object, resync time.Duration, indexers toolscache.Indexers) toolscache.SharedIndexInformer {
	return toolscache.NewSharedIndexInformer(patientInitialWatch{toolscache.ToListerWatcherWithContext(lw), lw}, obj, resync, indexers)
}

// patientInitialWatch gives a watch that streams the first list initialEventsTimeout
// instead of client-go's timeout, and passes everything else on.
type patientInitialWatch struct {
	toolscache.ListerWatcherWithContext
	// inner is the wrapped ListerWatcher, asked whether it can stream a list at all.
	inner toolscache.ListerWatcher
}

// List lists as the wrapped ListerWatcher does.
func (p patientInitialWatch) List(opts metav1.ListOptions) (runtime.Object, error) {
	return p.ListWithContext(context.Background(), opts)
}

// Watch watches as WatchWithContext does.
func (p patientInitialWatch) Watch(opts metav1.ListOptions) (watch.Interface, error) {
	return p.WatchWithContext(context.Background(), opts)
}

// WatchWithContext watches, with initialEventsTimeout when the watch streams a list first.
func (p patientInitialWatch) WatchWithContext(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	if opts.SendInitialEvents != nil && *opts.SendInitialEvents {
		timeout := int64(initialEventsTimeout / time.Second)
		opts.TimeoutSeconds = &timeout
	}
	return p.ListerWatcherWithContext.WatchWithContext(ctx, opts)
}

// IsWatchListSemanticsUnSupported says what the wrapped ListerWatcher says: whether
// client-go must list rather than stream (it asks its ListerWatcher).
func (p patientInitialWatch) IsWatchListSemanticsUnSupported() bool {
	u, ok := p.inner.(interface{ IsWatchListSemanticsUnSupported() bool })
	return ok && u.IsWatchListSemanticsUnSupported()
}
