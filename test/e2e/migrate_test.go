package e2e

// `kubectl credits` (issue 22 §1): the built plugin, found on PATH by the real kubectl,
// run as a ServiceAccount bound to the shipped credits-admin ClusterRole (its token the
// only credential), against the built manager serving the namespace it imports into.

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/migrate"
	"github.com/gitread/usercredits-operator/test/framework"
)

// migrateRows is a `\copy credits to … csv header` with a bad row of each kind.
const migrateRows = `user_id,credits,updated_at
user_M1,25,2024-05-01 12:34:56.789+00
user_M2,0,2024-05-02 00:00:00+00
user_M3,7,
user_M4,-5,2024-05-01 00:00:00+00
user_M5,2.5,2024-05-01 00:00:00+00
bad user,1,2024-05-01 00:00:00+00
user_M1,26,2024-05-01 00:00:00+00
user_M6,1,2024-05-01 00:00:00+00,extra
user_MX,9,2024-05-03 00:00:00+00
`

func TestKubectlCredits(t *testing.T) {
	const src, cp = "migrate-src", "migrate-copy"
	c := suite.c
	c.installNamespace(t, src)
	createNamespace(t, cp)
	plugin := buildPlugin(t)
	admin := newPluginUser(t, plugin, src, "migrator", "credits-admin", src, cp)
	m := newManager(t)
	m.start(t, append(m.baseArgs(), "--namespace="+src), baseEnv(clerkKey()))
	api := c.caller(t, src, "migrate-api", "credits-admin")
	objects := adminClient(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "credits.csv")
	if err := os.WriteFile(file, []byte(migrateRows), 0o600); err != nil {
		t.Fatal(err)
	}
	// user_MX already has a balance of its own when the import runs.
	expectHTTP(t, "set user_MX", 200, `{"success":true,"credits":4}`)(httpDo(t, "POST", m.url("/api/credits?userId=user_MX"), api, `{"credits":4}`))

	t.Run("import", func(t *testing.T) {
		out, errOut, code := admin.run(t, "import", file, "-n", src)
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, errOut, out)
		}
		for _, want := range []string{
			file + `:5: negative credits "-5"`, file + `:6: fractional credits "2.5"`, file + `:7: invalid user ID "bad user"`,
			file + `:8: duplicate user "user_M1": line 2 has it already, with different values (credits 26 here, 25 there)`,
			file + ":9: 4 values, the header names 3 columns",
			file + `:10: user "user_MX" has 9 credits in the file and 4 in the cluster: left alone (--overwrite replaces it)`,
		} {
			if !strings.Contains(errOut, want) {
				t.Errorf("stderr does not say %q:\n%s", want, errOut)
			}
		}
		for label, want := range map[string]string{"rows read": "9", "bad rows": "5", "created": "3", "differs": "1", "failed": "0"} {
			if got := summaryCount(t, out, label); got != want {
				t.Errorf("%s: %s, want %s\n%s", label, got, want, out)
			}
		}
		// Served, with the export's time as status.updatedAt (written by the controller).
		expectHTTP(t, "user_M1 reads", 200, `{"credits":25}`)(httpDo(t, "GET", m.url("/api/credits"), userToken(t, "user_M1"), ""))
		framework.Eventually(t, 20*time.Second, func() error {
			users := usersIn(t, objects, src)
			for user, want := range map[string]string{"user_M1": "2024-05-01T12:34:56Z", "user_M2": "2024-05-02T00:00:00Z", "user_M3": "", "user_MX": ""} {
				obj := users[user]
				valid := meta.IsStatusConditionTrue(obj.Status.Conditions, creditsv1alpha1.ConditionValid)
				if !valid || obj.Status.UpdatedAt == nil || (want != "" && obj.Status.UpdatedAt.UTC().Format(time.RFC3339) != want) {
					return fmt.Errorf("%s: Valid %v, updatedAt %v, want %q", user, valid, obj.Status.UpdatedAt, want)
				}
			}
			if n := users["user_MX"].Spec.Credits; n != 4 {
				return fmt.Errorf("user_MX has %d credits, want 4: left alone", n)
			}
			return nil
		})
	})

	t.Run("a second run changes nothing and says so", func(t *testing.T) {
		before := usersIn(t, objects, src)
		out, errOut, code := admin.run(t, "import", file, "-n", src)
		if code != 0 || summaryCount(t, out, "already imported") != "3" || summaryCount(t, out, "created") != "0" ||
			!strings.Contains(out, "Nothing was written: no row needed it.") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		for user, obj := range usersIn(t, objects, src) {
			if was := before[user]; obj.Generation != was.Generation || !maps.Equal(obj.Annotations, was.Annotations) {
				t.Errorf("%s was written: generation %d, was %d", user, obj.Generation, was.Generation)
			}
		}
	})

	t.Run("--overwrite, guarded and exactly once", func(t *testing.T) {
		// A user spends after the import: no later run gives the credit back.
		expectHTTP(t, "user_M1 consumes", 200, `{"success":true,"credits":24}`)(httpDo(t, "POST", m.url("/api/credits/consume"), userToken(t, "user_M1"), ""))
		out, errOut, code := admin.run(t, "import", file, "-n", src, "--overwrite", "--dry-run")
		if code != 0 || summaryCount(t, out, "to be overwritten") != "1" || !strings.Contains(errOut, `user "user_MX": 4 credits would be overwritten with 9`) ||
			!strings.Contains(out, "Dry run: nothing was written") {
			t.Fatalf("dry run: exit %d\n%s\n%s", code, out, errOut)
		}
		if n := usersIn(t, objects, src)["user_MX"].Spec.Credits; n != 4 {
			t.Fatalf("the dry run wrote user_MX: %d credits", n)
		}
		for run := 1; run <= 2; run++ {
			out, errOut, code = admin.run(t, "import", file, "-n", src, "--overwrite")
			want := map[string]string{"overwritten": "1", "already imported": "3"}
			if run == 2 {
				want = map[string]string{"overwritten": "0", "already imported": "4"}
			}
			for label, n := range want {
				if got := summaryCount(t, out, label); code != 0 || got != n {
					t.Errorf("run %d: exit %d, %s %s, want %s\n%s\n%s", run, code, label, got, n, out, errOut)
				}
			}
		}
		users := usersIn(t, objects, src)
		if users["user_MX"].Spec.Credits != 9 || users["user_M1"].Spec.Credits != 24 {
			t.Errorf("user_MX %d (want 9), user_M1 %d (want 24, spent after the import)", users["user_MX"].Spec.Credits, users["user_M1"].Spec.Credits)
		}
		status, body := httpDo(t, "GET", m.url("/api/credits/transactions"), userToken(t, "user_MX"), "")
		if status != 200 || !strings.HasPrefix(body, `{"transactions":[{"type":"set","credits":9,"balance":9,`) {
			t.Errorf("user_MX's history: %d %s, want the overwrite recorded as a set", status, body)
		}
	})

	t.Run("export, import into an empty namespace, export: the same bytes", func(t *testing.T) {
		// A user with a lot of its own and an open hold: what the credits table never had.
		expires := time.Now().Add(90 * 24 * time.Hour).UTC().Truncate(time.Second).Format(time.RFC3339)
		expectHTTP(t, "grant", 200, `{"success":true,"credits":10}`)(httpDo(t, "POST", m.url("/api/credits/grant?userId=user_MH"), api,
			`{"credits":10,"expiresAt":"`+expires+`","priority":10,"reason":"launch, \"promo\""}`, "Idempotency-Key", "migrate-grant"))
		if status, body := httpDo(t, "POST", m.url("/api/credits/reserve?userId=user_MH"), api, `{"credits":3,"ttlSeconds":86400}`); status != 200 {
			t.Fatalf("reserve: %d %s", status, body)
		}
		for _, format := range []string{"csv", "json"} {
			target := cp
			if format == "json" {
				target = cp + "-json"
				createNamespace(t, target)
				if err := bindIn(c, target, src, "migrator", "credits-admin"); err != nil {
					t.Fatal(err)
				}
			}
			first, second := filepath.Join(dir, "first."+format), filepath.Join(dir, "second."+format)
			if _, errOut, code := admin.run(t, "export", "-n", src, "-o", first); code != 0 || !strings.Contains(errOut, "exported 5 users of namespace "+src) {
				t.Fatalf("export: exit %d\n%s", code, errOut)
			}
			out, errOut, code := admin.run(t, "import", first, "-n", target)
			if code != 0 || summaryCount(t, out, "created") != "5" || summaryCount(t, out, "bad rows") != "0" {
				t.Fatalf("import of the export: exit %d\n%s\n%s", code, out, errOut)
			}
			if _, errOut, code := admin.run(t, "export", "-n", target, "-o", second); code != 0 {
				t.Fatalf("second export: exit %d\n%s", code, errOut)
			}
			a, _ := os.ReadFile(first)
			b, _ := os.ReadFile(second)
			if !bytes.Equal(a, b) {
				t.Errorf("%s: the round trip differs:\n%s\nthen\n%s", format, a, b)
			}
			exported, err := migrate.Parse(a, migrate.DetectFormat(first, a))
			if err != nil || len(exported.Rows) != 5 {
				t.Fatalf("%s export reads back as %+v, %v", format, exported, err)
			}
			byUser := map[string]migrate.Row{}
			for _, r := range exported.Rows {
				byUser[string(r.UserID)] = r
			}
			mh, m2 := byUser["user_MH"], byUser["user_M2"]
			if mh.Credits != 7 || mh.Reserved() != 3 || len(mh.Lots) != 1 || mh.Lots[0].Remaining != 7 || mh.Lots[0].Reason != `launch, "promo"` ||
				!strings.HasPrefix(mh.Holds[0].ID, "rsv_") || migrate.FormatTime(m2.UpdatedAt) != "2024-05-02T00:00:00Z" {
				t.Errorf("%s export: user_MH %+v, user_M2 %+v", format, mh, m2)
			}
			if format == "json" && !strings.HasPrefix(string(a), `{"kind":"UserCreditsExport","totals":{"users":5,"credits":47,"reserved":3,"holds":1,`) {
				t.Errorf("JSON export's head:\n%s", strings.SplitN(string(a), "\n", 2)[0])
			}
		}
	})

	t.Run("a viewer may export, never import", func(t *testing.T) {
		viewer := newPluginUser(t, plugin, src, "migrate-viewer", "usercredits-view", src)
		if _, errOut, code := viewer.run(t, "export", "-n", src); code != 0 {
			t.Fatalf("viewer's export: exit %d\n%s", code, errOut)
		}
		rows := filepath.Join(dir, "viewer.csv")
		if err := os.WriteFile(rows, []byte("user_id,credits\nuser_MV,100\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, errOut, code := viewer.run(t, "import", rows, "-n", src)
		if code != 1 || !strings.Contains(errOut, `:2: user "user_MV": not written:`) || !strings.Contains(errOut, "forbidden") {
			t.Errorf("viewer's import: exit %d\n%s\n%s", code, out, errOut)
		}
		if _, ok := usersIn(t, objects, src)["user_MV"]; ok {
			t.Error("the viewer's import wrote user_MV")
		}
	})
}
