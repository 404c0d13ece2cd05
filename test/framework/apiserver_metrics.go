package framework

import (
	"context"
	"fmt"
	"strings"

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
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return 0, err
	}
	data, err := cs.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return 0, err
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(data)))
	if err != nil {
		return 0, fmt.Errorf("parsing apiserver metrics: %w", err)
	}
	var total float64
	for _, m := range families["apiserver_request_total"].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["resource"] == resource && labels["verb"] == verb && labels["subresource"] == "" {
			total += m.GetCounter().GetValue()
		}
	}
	return total, nil
}
