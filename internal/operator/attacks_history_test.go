package operator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"syscall"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gitread/usercredits-operator/internal/account"
)

// quickAnswer bounds how long an answer to a hand-edited object may take.
const quickAnswer = time.Second

// timedGet sends a GET with its own client timeout (a request that never ends must not
// hang the test) and reports how long the answer took; status 0 when none came.
func timedGet(t *testing.T, url, token string, timeout time.Duration) (int, string, time.Duration) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	start := time.Now()
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return 0, err.Error(), time.Since(start)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data), time.Since(start)
}

// processCPU is the CPU time this test process (the operators run in it) has used.
func processCPU(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// idleCPU is the CPU the process uses over one second in which the test sends nothing: a
// request that ended but left a loop behind shows as a busy core.
func idleCPU(t *testing.T) time.Duration {
	t.Helper()
	before := processCPU(t)
	time.Sleep(time.Second)
	return processCPU(t) - before
}

// damagedDataEvent matches the reason of a Warning Event that reports stored data the
// operator cannot use.
var damagedDataEvent = regexp.MustCompile(`(?i)damaged|invalid|corrupt|malformed|untrusted`)

// warningsAbout lists the reasons of the Warning Events about object name.
func warningsAbout(t *testing.T, name string) []string {
	t.Helper()
	var list eventsv1.EventList
	if err := k8sClient.List(context.Background(), &list, client.InNamespace(testNamespace)); err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, e := range list.Items {
		if e.Regarding.Name == name && e.Type == "Warning" {
			reasons = append(reasons, e.Reason)
		}
	}
	return reasons
}

// TestAttackHandEditedHistorySeq (issue 19 §2, attack 2): the history's sequence number is
// an annotation anyone with kubectl can edit. What the history answers is bounded by the
// entries stored, never by that number: a negative one (before the fix: a panic, so every
// history read was a 500) or a huge one with the chunks removed (before the fix: a loop of
// seq/10 iterations that ignores the request's context and keeps a core busy) is answered
// within a second with the stored entries (here, what is left of them), reported as a
// Warning Event on the object, and the balance is still served and changed.
//
// Asserted: 200 with the entries that are stored, not the contract's 500. The history is a
// record kept beside the balance, not the balance: damage to its counter is reported, and
// what is stored stays readable, as a damaged key ledger already reads as empty. A 500
// would last until a person repaired the annotation; and a 500 is what the panic answered.
func TestAttackHandEditedHistorySeq(t *testing.T) {
	user := "user_AttackHistory1"
	name := account.ObjectNameForUser(user)
	tok := tokenFor(t, user)
	url := apiBase + "/api/credits/transactions"
	expectCall(t, "set", "POST", tok, `{"credits":10}`, 200, `{"success":true,"credits":10}`)
	for _, n := range []int{2, 1} {
		if status, body := request(t, "POST", apiURL+"/consume", tok, fmt.Sprintf(`{"credits":%d}`, n)); status != 200 {
			t.Fatalf("consume %d: %d %s", n, status, body)
		}
	}
	stored := map[string]bool{"set 10 → 10": true, "consume 2 → 8": true, "consume 1 → 7": true}
	status, body, took := timedGet(t, url, tok, 3*time.Second)
	checkBoundedHistory(t, "before the edit", stored, status, body, took)

	// A negative sequence number, the chunks left in place.
	kubectl(t, "annotate", "uc", name, "-n", testNamespace, "--overwrite", account.HistorySeqAnnotation+"=-7")
	status, body, took = timedGet(t, url, tok, 3*time.Second)
	checkBoundedHistory(t, "history-seq=-7", stored, status, body, took)
	// The damage is reported on the object (by whichever part of the operator finds it).
	reported := false
	for deadline := time.Now().Add(10 * time.Second); !reported && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		status, body, took = timedGet(t, url, tok, 3*time.Second)
		if status != 200 || took > quickAnswer {
			continue // reported above; keep looking for the Event
		}
		for _, reason := range warningsAbout(t, name) {
			reported = reported || damagedDataEvent.MatchString(reason)
		}
	}
	if !reported {
		t.Errorf("history-seq=-7: no Warning Event about %s naming damaged stored data (Warnings: %v)", name, warningsAbout(t, name))
	}
	// The balance is still served and changed.
	expectCall(t, "balance with a damaged history", "GET", tok, "", 200, `{"credits":7}`)
	if status, body := request(t, "POST", apiURL+"/consume", tok, `{"credits":1}`); status != 200 || body != `{"success":true,"credits":6}` {
		t.Errorf("consume with a damaged history: %d %s", status, body)
	}
	stored["consume 1 → 6"] = true
	status, body, took = timedGet(t, url, tok, 3*time.Second)
	checkBoundedHistory(t, "history-seq=-7, after a consume", stored, status, body, took)

	// A huge sequence number, the chunks removed: nothing is stored, so nothing is walked.
	// A moderate one first (before the fix: a loop of a few seconds, which then ends), so
	// that the test never leaves a loop of 9e16 iterations running in the suite's process.
	for _, seq := range []string{"500000000", "900000000000000000"} {
		args := []string{"annotate", "uc", name, "-n", testNamespace, "--overwrite", account.HistorySeqAnnotation + "=" + seq}
		for k := range 11 {
			args = append(args, account.HistoryChunkAnnotation(k)+"-")
		}
		kubectl(t, args...)
		status, body, took = timedGet(t, url, tok, 3*time.Second)
		bounded := checkBoundedHistory(t, "history-seq="+seq+" without chunks", stored, status, body, took)
		if cpu := idleCPU(t); cpu > quickAnswer/2 {
			bounded = false
			t.Errorf("history-seq=%s: the operator's process used %v of CPU in the idle second after the request: a loop outlived it", seq, cpu.Round(time.Millisecond))
			for range 20 { // let it end before the next test (before the fix: seconds)
				if idleCPU(t) < quickAnswer/2 {
					break
				}
			}
		}
		if !bounded {
			t.Fatalf("history-seq=%s was not answered in bounded time: not sending a larger one, whose loop would not end while the suite runs", seq)
		}
		expectCall(t, "balance with history-seq="+seq, "GET", tok, "", 200, `{"credits":6}`)
		if status, body, took := timedGet(t, apiBase+"/api/credits", tok, 3*time.Second); status != 200 || took > quickAnswer {
			t.Errorf("the next request after history-seq=%s: %d %s after %v", seq, status, body, took)
		}
	}
	if status, body := request(t, "POST", apiURL+"/consume", tok, `{"credits":1}`); status != 200 || body != `{"success":true,"credits":5}` {
		t.Errorf("consume with history-seq=900000000000000000: %d %s", status, body)
	}
	stored["consume 1 → 5"] = true
	status, body, took = timedGet(t, url, tok, 3*time.Second)
	checkBoundedHistory(t, "history-seq=900000000000000000, after a consume", stored, status, body, took)
}

// checkBoundedHistory checks a history answer: 200 within quickAnswer, at most 100
// entries, each one of those stored ("type credits → balance"). It reports whether it
// came within quickAnswer.
func checkBoundedHistory(t *testing.T, what string, stored map[string]bool, status int, body string, took time.Duration) bool {
	t.Helper()
	if status != 200 || took > quickAnswer {
		t.Errorf("%s: %d %s after %v; want 200 with the stored entries within %v", what, status, body, took.Round(time.Millisecond), quickAnswer)
		return status != 0 && took <= quickAnswer
	}
	var h history
	if err := json.Unmarshal([]byte(body), &h); err != nil || h.Transactions == nil || len(h.Transactions) > account.HistoryLength {
		t.Errorf("%s: %s is not a bounded history: %v", what, body, err)
		return true
	}
	for _, e := range h.Transactions {
		if entry := fmt.Sprintf("%s %d → %d", e.Type, e.Credits, e.Balance); !stored[entry] {
			t.Errorf("%s: entry %q was never stored", what, entry)
		}
	}
	return true
}
