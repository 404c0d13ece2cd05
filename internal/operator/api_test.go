package operator_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/credits"
	"github.com/gitread/usercredits-operator/test/framework"
)

var httpClient = &http.Client{Timeout: 10 * time.Second}

func tokenFor(t *testing.T, userID string) string {
	t.Helper()
	tok, err := signer.SessionToken(userID, 10*time.Minute) // long enough for the longest test on a loaded machine
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// call sends one request to the primary replica's /api/credits and returns status and body.
func call(t *testing.T, method, token, body string) (int, string) {
	t.Helper()
	return request(t, method, apiURL, token, body)
}

// request sends one request on loopback; header holds name/value pairs.
func request(t *testing.T, method, url, token, body string, header ...string) (int, string) {
	t.Helper()
	return requestWith(t, method, url, token, body, nil, header...)
}

// requestWith is request that also hands back the response headers when respHeader is set.
func requestWith(t *testing.T, method, url, token, body string, respHeader *http.Header, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return 0, ""
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, url, err)
		return 0, ""
	}
	defer resp.Body.Close()
	if respHeader != nil {
		*respHeader = resp.Header
	}
	data, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, url, ct)
	}
	return resp.StatusCode, string(data)
}

func expectCall(t *testing.T, name, method, token, body string, wantStatus int, wantBody string) {
	t.Helper()
	status, got := call(t, method, token, body)
	if status != wantStatus || got != wantBody {
		t.Errorf("%s: got %d %s, want %d %s", name, status, got, wantStatus, wantBody)
	}
}

// snapshot is every UserCredits object's spec generation and balance, read from the
// apiserver (status is the controller's and may change meanwhile).
func snapshot(t *testing.T) map[string]string {
	t.Helper()
	var list creditsv1alpha1.UserCreditsList
	if err := k8sClient.List(context.Background(), &list, client.InNamespace(testNamespace)); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, o := range list.Items {
		out[o.Name] = fmt.Sprintf("generation %d, credits %d", o.Generation, o.Spec.Credits)
	}
	return out
}

func expectUnchanged(t *testing.T, before map[string]string) {
	t.Helper()
	after := snapshot(t)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("storage changed:\nbefore %v\nafter  %v", before, after)
	}
}

func TestGetWithoutRecordIsZero(t *testing.T) {
	expectCall(t, "no record", "GET", tokenFor(t, "user_NoRecord"), "", 200, `{"credits":0}`)
}

func TestPostCreatesThenUpdatesAndReadsBack(t *testing.T) {
	ctx := context.Background()
	user := "user_2NNEqL2nrIRdJ194ndJqAHwEfxC"
	tok := tokenFor(t, user)

	expectCall(t, "create", "POST", tok, `{"credits": 10}`, 200, `{"success":true,"credits":10}`)
	// Read-your-writes: the very next GET on this replica sees the write.
	expectCall(t, "read back", "GET", tok, "", 200, `{"credits":10}`)

	obj := &creditsv1alpha1.UserCredits{}
	key := client.ObjectKey{Namespace: testNamespace, Name: account.ObjectNameForUser(user)}
	if err := k8sClient.Get(ctx, key, obj); err != nil {
		t.Fatalf("the upsert did not create %s: %v", key.Name, err)
	}
	if obj.Spec.UserID != user || obj.Spec.Credits != 10 {
		t.Fatalf("created spec: %+v", obj.Spec)
	}
	if !slices.ContainsFunc(obj.ManagedFields, func(m metav1.ManagedFieldsEntry) bool { return m.Manager == credits.FieldManager }) {
		t.Errorf("field manager %q not recorded: %+v", credits.FieldManager, obj.ManagedFields)
	}

	expectCall(t, "update", "POST", tok, `{"credits":3}`, 200, `{"success":true,"credits":3}`)
	expectCall(t, "read back update", "GET", tok, "", 200, `{"credits":3}`)

	// The controller validates what the API wrote, and kubectl shows it.
	framework.Eventually(t, 10*time.Second, func() error {
		if err := k8sClient.Get(ctx, key, obj); err != nil {
			return err
		}
		c := meta.FindStatusCondition(obj.Status.Conditions, creditsv1alpha1.ConditionValid)
		if obj.Status.Credits != 3 || c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("status not validated yet: %+v", obj.Status)
		}
		return nil
	})
	out := kubectl(t, "get", "uc", "-n", testNamespace)
	line := framework.LineContaining(out, key.Name)
	for _, want := range []string{user, " 3 ", "True"} {
		if !strings.Contains(line, want) {
			t.Fatalf("kubectl get uc line %q lacks %q:\n%s", line, want, out)
		}
	}
}

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	user, err := env.AddUser(envtest.User{Name: "kubectl-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	k, err := user.Kubectl()
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := k.Run(args...)
	if err != nil {
		errText, _ := io.ReadAll(stderr)
		t.Fatalf("kubectl %v: %v: %s", args, err, errText)
	}
	data, _ := io.ReadAll(stdout)
	return string(data)
}

func TestPostUpdatesAGitOpsNamedObject(t *testing.T) {
	ctx := context.Background()
	user := "user_GitOps1"
	gitops := &creditsv1alpha1.UserCredits{
		ObjectMeta: metav1.ObjectMeta{Name: "alice-from-git", Namespace: testNamespace},
		Spec:       creditsv1alpha1.UserCreditsSpec{UserID: user, Credits: 7},
	}
	if err := k8sClient.Create(ctx, gitops); err != nil {
		t.Fatal(err)
	}
	tok := tokenFor(t, user)
	framework.Eventually(t, 5*time.Second, func() error {
		if _, body := call(t, "GET", tok, ""); body != `{"credits":7}` {
			return fmt.Errorf("GET = %s", body)
		}
		return nil
	})
	expectCall(t, "update", "POST", tok, `{"credits":8}`, 200, `{"success":true,"credits":8}`)
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(gitops), gitops); err != nil || gitops.Spec.Credits != 8 {
		t.Fatalf("GitOps object not updated: %v %+v", err, gitops.Spec)
	}
	err := k8sClient.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: account.ObjectNameForUser(user)}, &creditsv1alpha1.UserCredits{})
	if !apierrors.IsNotFound(err) {
		t.Fatalf("a second object was created for a user who had one: %v", err)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	user := "user_BadInput1"
	tok := tokenFor(t, user)
	expectCall(t, "seed", "POST", tok, `{"credits":5}`, 200, `{"success":true,"credits":5}`)
	before := snapshot(t)

	for name, body := range framework.InvalidCreditsBodies {
		expectCall(t, name, "POST", tok, body, 400, `{"error":"Invalid credits value"}`)
	}
	huge := `{"credits":1,"pad":"` + strings.Repeat("x", 2<<20) + `"}`
	expectCall(t, "2 MiB body", "POST", tok, huge, 413, `{"error":"Request body too large"}`)

	expired, err := signer.Sign(map[string]any{"iss": "https://clerk.usercredits.local", "sub": user,
		"exp": time.Now().Add(-time.Minute).Unix(), "iat": time.Now().Add(-time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	for name, token := range map[string]string{"none": "", "garbage": "garbage", "expired": expired, "wrong signature": tok[:len(tok)-6] + "AAAAAA"} {
		expectCall(t, name+" token POST", "POST", token, `{"credits":99}`, 401, `{"error":"Unauthorized"}`)
		expectCall(t, name+" token GET", "GET", token, "", 401, `{"error":"Unauthorized"}`)
	}
	expectUnchanged(t, before)
	expectCall(t, "balance intact", "GET", tok, "", 200, `{"credits":5}`)
}

func TestConflictingRecordsAreNeitherServedNorChanged(t *testing.T) {
	ctx := context.Background()
	user := "user_Twice1"
	for _, name := range []string{"twice-a", "twice-b"} {
		obj := &creditsv1alpha1.UserCredits{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNamespace},
			Spec:       creditsv1alpha1.UserCreditsSpec{UserID: user, Credits: 4},
		}
		if err := k8sClient.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	tok := tokenFor(t, user)
	framework.Eventually(t, 5*time.Second, func() error {
		if status, body := call(t, "GET", tok, ""); status != 500 || body != `{"error":"Error fetching credits"}` {
			return fmt.Errorf("GET = %d %s", status, body)
		}
		return nil
	})
	before := snapshot(t)
	expectCall(t, "POST", "POST", tok, `{"credits":1}`, 500, `{"error":"Error updating credits"}`)
	expectUnchanged(t, before)

	framework.Eventually(t, 10*time.Second, func() error {
		var list eventsv1.EventList
		if err := k8sClient.List(ctx, &list, client.InNamespace(testNamespace)); err != nil {
			return err
		}
		for _, e := range list.Items {
			if e.Regarding.Name == "twice-a" && e.Reason == "UntrustedRecord" && e.Type == "Warning" {
				return nil
			}
		}
		return fmt.Errorf("no UntrustedRecord event about twice-a")
	})
}
