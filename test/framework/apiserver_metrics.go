package framework

import (
	"context"
	"fmt"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// APIServerRequests is the kube-apiserver's own count of the requests it served for
// resource with verb (apiserver_request_total, all codes and scopes): what the operator
// costs the apiserver, measured where it is paid. verb is the metric's verb label: GET,
// LIST, WATCH, POST (create), PATCH.
func APIServerRequests(ctx context.Context, cfg *rest.Config, resource, verb string) (float64, error) {
	families, err := apiserverMetrics(ctx, cfg)
	if err != nil {
		return 0, err
	}
	var total float64
	for _, m := range matching(families, "apiserver_request_total", map[string]string{"resource": resource, "verb": verb, "subresource": ""}) {
		total += m.GetCounter().GetValue()
	}
	return total, nil
}

// WatchCacheResourceVersion is the resourceVersion the kube-apiserver's watch cache of
// group/resource has reached (apiserver_watch_cache_resource_version): once it is at an
// etcd revision, every write up to it is served from the cache, including writes made
// straight to etcd.
func WatchCacheResourceVersion(ctx context.Context, cfg *rest.Config, group, resource string) (int64, error) {
	families, err := apiserverMetrics(ctx, cfg)
	if err != nil {
		return 0, err
	}
	var rv int64
	for _, m := range matching(families, "apiserver_watch_cache_resource_version", map[string]string{"group": group, "resource": resource}) {
		rv = max(rv, int64(m.GetGauge().GetValue()))
	}
	return rv, nil
}

// WatchListTime is the kube-apiserver's total time and count of the watch-list requests
// (an informer's initial list, streamed: client-go's default) it finished for
// group/resource (apiserver_watch_list_duration_seconds): the difference over a start is
// how long the apiserver took to send that start's initial list.
func WatchListTime(ctx context.Context, cfg *rest.Config, group, resource string) (seconds float64, count uint64, err error) {
	families, err := apiserverMetrics(ctx, cfg)
	if err != nil {
		return 0, 0, err
	}
	for _, m := range matching(families, "apiserver_watch_list_duration_seconds", map[string]string{"group": group, "resource": resource}) {
		seconds += m.GetHistogram().GetSampleSum()
		count += m.GetHistogram().GetSampleCount()
	}
	return seconds, count, nil
}

func apiserverMetrics(ctx context.Context, cfg *rest.Config) (map[string]*dto.MetricFamily, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	data, err := cs.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, err
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(data)))
	if err != nil {
		return nil, fmt.Errorf("parsing apiserver metrics: %w", err)
	}
	return families, nil
}

// matching are the samples of family whose labels have the values of labels ("" matches
// a label that is absent).
func matching(families map[string]*dto.MetricFamily, family string, labels map[string]string) []*dto.Metric {
	var out []*dto.Metric
	for _, m := range families[family].GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		ok := true
		for k, v := range labels {
			ok = ok && have[k] == v
		}
		if ok {
			out = append(out, m)
		}
	}
	return out
}
