package httpapi

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gitread/usercredits-operator/internal/metrics"
)

func TestRequestsAreCounted(t *testing.T) {
	f := newFixture(t, false)
	ok := metrics.APIRequests.WithLabelValues("/api/credits", "GET", "200")
	unauth := metrics.APIRequests.WithLabelValues("/api/credits", "GET", "401")
	other := metrics.APIRequests.WithLabelValues("other", "GET", "404")
	noToken := metrics.AuthFailures.WithLabelValues("no_bearer_token")
	badToken := metrics.AuthFailures.WithLabelValues("invalid_token")
	forbidden := metrics.AuthFailures.WithLabelValues("forbidden")
	before := []float64{testutil.ToFloat64(ok), testutil.ToFloat64(unauth), testutil.ToFloat64(other),
		testutil.ToFloat64(noToken), testutil.ToFloat64(badToken), testutil.ToFloat64(forbidden)}

	f.authed("GET", "")
	f.authed("GET", "")
	f.do("GET", "/api/credits", "")
	f.do("GET", "/api/credits", "", "Authorization", "Bearer x.y.z")
	f.do("GET", "/nope/"+f.token, "") // unknown paths share one label, whatever they are
	f.authed("POST", `{"credits":1}`) // user writes are off: forbidden

	after := []float64{testutil.ToFloat64(ok), testutil.ToFloat64(unauth), testutil.ToFloat64(other),
		testutil.ToFloat64(noToken), testutil.ToFloat64(badToken), testutil.ToFloat64(forbidden)}
	want := []float64{2, 2, 1, 1, 1, 1}
	for i := range want {
		if d := after[i] - before[i]; d != want[i] {
			t.Errorf("metric %d grew by %v, want %v", i, d, want[i])
		}
	}
	if n := testutil.CollectAndCount(metrics.APIRequestDuration); n == 0 {
		t.Error("no latency observations")
	}
}
