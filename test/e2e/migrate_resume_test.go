package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/test/framework"
)

// TestKubectlCreditsImportResumes: an import killed midway (SIGKILL: no chance to tidy up)
// and run again writes every row exactly once: the second run finds what the first wrote
// and writes only the rest. The file is JSON lines, as `row_to_json` writes them.
func TestKubectlCreditsImportResumes(t *testing.T) {
	const ns, rows = "migrate-resume", 3000
	createNamespace(t, ns)
	admin := newPluginUser(t, buildPlugin(t), ns, "resumer", "credits-admin", ns)
	objects := adminClient(t)
	var b strings.Builder
	for i := range rows {
		fmt.Fprintf(&b, `{"user_id":"user_R%05d","credits":%d,"updated_at":"2024-06-01T00:00:00+00:00"}`+"\n", i, i%97)
	}
	file := filepath.Join(t.TempDir(), "credits.jsonl")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	slow := admin.command("import", file, "-n", ns, "--qps", "100", "--burst", "10", "--concurrency", "4")
	var out strings.Builder
	slow.Stdout, slow.Stderr = &out, &out
	if err := slow.Start(); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 60*time.Second, func() error {
		if n := len(usersIn(t, objects, ns)); n < rows/10 {
			return fmt.Errorf("%d objects written so far", n)
		}
		return nil
	})
	if err := slow.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = slow.Wait()
	time.Sleep(500 * time.Millisecond) // a create in flight at the kill lands or not by now
	written := len(usersIn(t, objects, ns))
	if written >= rows {
		t.Fatalf("the import finished before it was killed (%d objects): nothing to resume\n%s", written, out.String())
	}
	t.Logf("killed after %d of %d rows", written, rows)

	summary, errOut, code := admin.run(t, "import", file, "-n", ns)
	if code != 0 {
		t.Fatalf("re-run: exit %d\n%s\n%s", code, summary, errOut)
	}
	if got := summaryCount(t, summary, "already imported"); got != strconv.Itoa(written) {
		t.Errorf("already imported %s, want the %d the killed run wrote\n%s", got, written, summary)
	}
	if got := summaryCount(t, summary, "created"); got != strconv.Itoa(rows-written) {
		t.Errorf("created %s, want the %d it had not\n%s", got, rows-written, summary)
	}
	users := usersIn(t, objects, ns)
	if len(users) != rows {
		t.Fatalf("%d objects, want %d", len(users), rows)
	}
	for i := range rows {
		user := fmt.Sprintf("user_R%05d", i)
		obj := users[user]
		if obj.Spec.Credits != int64(i%97) || obj.Generation != 1 || obj.Name != account.ObjectNameForUser(user) {
			t.Fatalf("%s: %d credits at generation %d, named %s; want %d written once", user, obj.Spec.Credits, obj.Generation, obj.Name, i%97)
		}
	}
}
