package e2e

// The docs test's reader on made-up docs: it must refuse a shell block nobody decided about,
// and its output comparison must fail on a wrong answer, or TestDocs could pass on anything.

import (
	"slices"
	"strings"
	"testing"
)

func TestDocsReader(t *testing.T) {
	t.Run("Conventions", func(t *testing.T) {
		for _, tc := range []struct {
			name, doc, problem string
		}{
			{"unannotated shell block", "text\n\n```sh\nls\n```\n", "without a docs-test annotation"},
			{"console block", "```console\nls\n```\n", "without a docs-test annotation"},
			{"fence without a language", "```\nmake test\n```\n", "without a language"},
			{"skip without a reason", "<!-- docs-test: skip -->\n```sh\nls\n```\n", "needs its reason"},
			{"unknown environment", "<!-- docs-test: env=kind -->\n```sh\nls\n```\n", `env="kind"`},
			{"annotation before prose", "<!-- docs-test: env=cluster -->\nprose\n```sh\nls\n```\n", "not followed by a code block"},
			{"annotation on yaml", "<!-- docs-test: env=cluster -->\n```yaml\na: b\n```\n", "on a yaml block"},
			{"skip-line without a reason", "<!-- docs-test: env=cluster\nskip-line \"ls\" -->\n```sh\nls\n```\n", "malformed"},
		} {
			_, problems := parseDoc("x.md", tc.doc)
			if len(problems) == 0 || !strings.Contains(problems[0], tc.problem) {
				t.Errorf("%s: problems %q, want the first saying %q", tc.name, problems, tc.problem)
			}
		}
		ok := "<!-- docs-test: skip — needs the Stripe CLI -->\n```sh\nstripe listen\n```\n\n" +
			"<!-- docs-test: env=cluster given=installed\n  skip-line \"make image\" — slow -->\n\n```bash\nmake image\n```\n" +
			"- list item\n\n  ```yaml\n  a: b\n  ```\n```go\nx := 1\n```\n```text\nNAME\n```\n"
		blocks, problems := parseDoc("x.md", ok)
		if len(problems) != 0 || len(blocks) != 5 {
			t.Fatalf("problems %q, %d blocks, want none and 5", problems, len(blocks))
		}
		if b := blocks[0]; b.skip != "needs the Stripe CLI" {
			t.Errorf("skip reason %q", b.skip)
		}
		if b := blocks[1]; b.env != "cluster" || !slices.Equal(b.given, []string{"installed"}) || len(b.skipLines) != 1 || b.skipLines[0] != (lineSkip{"make image", "slow"}) {
			t.Errorf("run annotation read as %+v", b)
		}
		if b := blocks[2]; b.lang != "yaml" || b.body != "a: b" || b.annotated {
			t.Errorf("indented yaml block read as %+v", b)
		}
	})

	t.Run("Steps", func(t *testing.T) {
		b := docBlock{bodyLine: 10, body: strings.Join([]string{
			"# prose at the top",
			"curl -s http://x \\",
			"  -H 'a: b'          # prose at the end of a line",
			"# {\"credits\":0}",
			"export A=1",
			"",
			"# prose after a blank line",
			"kubectl get uc",
			"# NAME   USER",
			"# alice  user_a",
		}, "\n")}
		steps := b.steps()
		want := []docStep{
			{line: 11, command: "curl -s http://x \\\n  -H 'a: b'          # prose at the end of a line", output: []string{`{"credits":0}`}},
			{line: 14, command: "export A=1"},
			{line: 17, command: "kubectl get uc", output: []string{"NAME   USER", "alice  user_a"}},
		}
		if len(steps) != len(want) {
			t.Fatalf("steps %+v, want %+v", steps, want)
		}
		for i := range want {
			if steps[i].line != want[i].line || steps[i].command != want[i].command || !slices.Equal(steps[i].output, want[i].output) {
				t.Errorf("step %d: %+v, want %+v", i, steps[i], want[i])
			}
		}
	})

	t.Run("Output", func(t *testing.T) {
		table := []string{
			"NAME                        USER       CREDITS   RESERVED   VALID   UPDATED   AGE",
			"user-dev-45dc95b2b7b75794   user_dev   10                   True    2s        2s",
		}
		wide := []string{
			"NAME       USER       CREDITS   EXPIRING   EXPIRES                AGE",
			"user-dev   user_dev   57        50         2027-01-31T00:00:00Z   2s",
		}
		for _, tc := range []struct {
			name  string
			want  []string
			got   string
			match bool
		}{
			{"same JSON", []string{`{"credits":0}`}, `{"credits":0}`, true},
			{"other JSON", []string{`{"credits":0}`}, `{"credits":10}`, false},
			{"JSON with a space", []string{`{"credits":0}`}, `{"credits": 0}`, false},
			{"extra line", []string{`{"credits":0}`}, "{\"credits\":0}\n{}", false},
			{"hold ID", []string{`{"reservationId":"rsv_5f0c2a9d41e8b7c3"}`}, `{"reservationId":"rsv_929b035d3b814443"}`, true},
			{"not a hold ID", []string{`{"reservationId":"rsv_5f0c2a9d41e8b7c3"}`}, `{"reservationId":"rsv_1"}`, false},
			{"ellipsis and time", []string{`[{"type":"set","at":"2026-11-24T18:30:00Z"},{"type":"reserve",…}]`}, `[{"type":"set","at":"2027-01-02T03:04:05Z"},{"type":"reserve","credits":1}]`, true},
			{"ellipsis is no type", []string{`[{"type":"reserve",…}]`}, `[{"type":"capture","credits":1}]`, false},
			{"table, other ages", table, strings.ReplaceAll(table[0], "AGE", "AGE") + "\n" + strings.Replace(table[1], "2s        2s", "3m1s      47s", 1), true},
			{"table, other balance", table, table[0] + "\n" + strings.Replace(table[1], "10 ", "11 ", 1), false},
			{"table, reserved filled", table, table[0] + "\n" + strings.Replace(table[1], "10         ", "10        1", 1), false},
			{"table, extra row", table, strings.Join(table, "\n") + "\nalice  user_a  1  True  1s  1s", false},
			{"table, other columns", table, strings.Replace(table[0], "VALID", "READY", 1) + "\n" + table[1], false},
			{"lot ID", []string{`{"id":"lot_5c1e0f2a9b3d4e67"}`}, `{"id":"lot_0123456789abcdef"}`, true},
			{"a hold ID for a lot ID", []string{`{"id":"lot_5c1e0f2a9b3d4e67"}`}, `{"id":"rsv_0123456789abcdef"}`, false},
			{"table, any expiry", wide, wide[0] + "\n" + strings.Replace(wide[1], "2027-01-31T00:00:00Z", "2026-12-30T07:00:00Z", 1), true},
			{"table, no expiry", wide, wide[0] + "\n" + strings.Replace(wide[1], "2027-01-31T00:00:00Z", "                    ", 1), false},
			{"table, other expiring", wide, wide[0] + "\n" + strings.Replace(wide[1], "50 ", "49 ", 1), false},
		} {
			err := matchOutput(tc.want, tc.got)
			if (err == nil) != tc.match {
				t.Errorf("%s: match %v (%v), want %v", tc.name, err == nil, err, tc.match)
			}
		}
	})
}
