package migrate

import (
	"strings"
	"testing"
	"time"
)

// badLines maps each bad row's line to its reason.
func badLines(f File) map[int]string {
	out := map[int]string{}
	for _, b := range f.Bad {
		out[b.Line] = b.Reason
	}
	return out
}

// wantBad checks that exactly the lines of want are bad, each with a reason containing
// want's text.
func wantBad(t *testing.T, f File, want map[int]string) {
	t.Helper()
	got := badLines(f)
	for line, text := range want {
		reason, ok := got[line]
		if !ok {
			t.Errorf("line %d is not reported bad (want %q); bad rows: %v", line, text, f.Bad)
			continue
		}
		if !strings.Contains(reason, text) {
			t.Errorf("line %d: reason %q, want it to say %q", line, reason, text)
		}
	}
	for line, reason := range got {
		if _, ok := want[line]; !ok {
			t.Errorf("line %d reported bad unexpectedly: %s", line, reason)
		}
	}
}

func TestParseCSVFromPostgres(t *testing.T) {
	// What `\copy credits to 'credits.csv' csv header` writes, with a bad row of each kind.
	data := "\xef\xbb\xbfuser_id,credits,updated_at\n" + // 1 (with the BOM a spreadsheet adds)
		"user_2NNEqL2nrIRdJ194ndJqAHwEfxC,25,2024-05-01 12:34:56.789+00\n" + // 2
		"user_b,0,2024-05-01 12:34:56+02\n" + // 3
		"user_c,12.00,\n" + // 4: a numeric column, a NULL updated_at
		"user_neg,-5,2024-05-01 12:34:56+00\n" + // 5
		"user_frac,2.5,2024-05-01 12:34:56+00\n" + // 6
		"user with space,3,2024-05-01 12:34:56+00\n" + // 7
		",3,2024-05-01 12:34:56+00\n" + // 8
		"user_b,0,2024-05-01 12:34:56+02\n" + // 9: the same as line 3
		"user_c,13,2024-05-01 12:34:56+00\n" + // 10: differs from line 4
		"user_extra,1,2024-05-01 12:34:56+00,oops\n" + // 11
		"user_short,1\n" + // 12
		"user_time,1,yesterday\n" + // 13
		"user_big,9007199254740992,\n" + // 14: 2^53
		"user_text,ten,\n" + // 15
		"\n" + // 16: a blank line is no row
		"\"user_\"\"q\",1,\n" + // 17: a quoted quote is a valid ID
		"user_d,\"7\",2024-05-01T10:00:00Z\n" // 18
	f, err := Parse([]byte(data), CSV)
	if err != nil {
		t.Fatal(err)
	}
	wantBad(t, f, map[int]string{
		5:  "negative credits",
		6:  "fractional credits",
		7:  "invalid user ID",
		8:  "no user_id",
		9:  "duplicate user \"user_b\": line 3 has it already, with the same values",
		10: "duplicate user \"user_c\": line 4 has it already, with different values (credits 13 here, 12 there)",
		11: "4 values, the header names 3 columns (a value in an unknown column)",
		12: "2 values, the header names 3 columns",
		13: "bad updated_at \"yesterday\"",
		14: "above the largest balance",
		15: "not a whole number",
	})
	if f.Read != 16 {
		t.Errorf("read %d rows, want 16 (every non-blank line but the header)", f.Read)
	}
	want := []struct {
		line    int
		user    string
		credits int64
		at      string
	}{
		{2, "user_2NNEqL2nrIRdJ194ndJqAHwEfxC", 25, "2024-05-01T12:34:56Z"},
		{3, "user_b", 0, "2024-05-01T10:34:56Z"},
		{4, "user_c", 12, ""},
		{17, `user_"q`, 1, ""},
		{18, "user_d", 7, "2024-05-01T10:00:00Z"},
	}
	if len(f.Rows) != len(want) {
		t.Fatalf("rows: %+v, want %d", f.Rows, len(want))
	}
	for i, w := range want {
		r := f.Rows[i]
		if r.Line != w.line || string(r.UserID) != w.user || r.Credits != w.credits || FormatTime(r.UpdatedAt) != w.at {
			t.Errorf("row %d: line %d %q %d %q, want %+v", i, r.Line, r.UserID, r.Credits, FormatTime(r.UpdatedAt), w)
		}
	}
}

func TestParseCSVLinesAcrossQuotedNewlines(t *testing.T) {
	// A quoted field may span lines: the next row's line is counted in the file, not in rows.
	data := "credits,user_id\n5,\"user_a\"\n6,\"user\nb\"\n-1,user_c\n\"1,user_d\n"
	f, err := Parse([]byte(data), CSV)
	if err != nil {
		t.Fatal(err)
	}
	wantBad(t, f, map[int]string{3: "invalid user ID", 5: "negative credits", 6: "malformed CSV"})
	if len(f.Rows) != 1 || f.Rows[0].UserID != "user_a" || f.Rows[0].Credits != 5 || f.Rows[0].Line != 2 {
		t.Errorf("rows %+v, want user_a with 5 on line 2 (columns in any order)", f.Rows)
	}
}

func TestParseCSVRefusesTheFile(t *testing.T) {
	for name, data := range map[string]string{
		"empty":          "",
		"unknown column": "user_id,credits,created_at\nuser_a,1,2024-05-01 00:00:00+00\n",
		"no credits":     "user_id,updated_at\nuser_a,2024-05-01 00:00:00+00\n",
		"no user_id":     "credits\n5\n",
		"twice":          "user_id,credits,credits\nuser_a,1,1\n",
	} {
		if f, err := Parse([]byte(data), CSV); err == nil {
			t.Errorf("%s: parsed as %+v, want the file refused", name, f)
		} else if !strings.HasPrefix(err.Error(), "line 1") && name != "empty" {
			t.Errorf("%s: %v, want it to name line 1", name, err)
		}
	}
}

func TestParseJSONForms(t *testing.T) {
	array := `[
  {"user_id": "user_a", "credits": 5, "updated_at": "2024-05-01T12:34:56.123456+00:00"},
  {"user_id": "user_b", "credits": "7"},
  {"user_id": "user_c", "credits": 2.5},
  {"user_id": "user_d", "credits": null},
  {"user_id": "user_e", "credits": 1, "note": "x"},
  42,
  {"user_id": 12, "credits": 1},
  {"user_id": "user_f", "credits": -0, "updated_at": null}
]`
	f, err := Parse([]byte(array), JSON)
	if err != nil {
		t.Fatal(err)
	}
	wantBad(t, f, map[int]string{4: "fractional credits", 5: "no credits", 6: `unknown key ["note"]`, 7: "not a JSON object",
		8: "user_id must be a string"})
	if len(f.Rows) != 3 || f.Rows[0].Line != 2 || f.Rows[1].Credits != 7 || f.Rows[2].UserID != "user_f" || f.Rows[2].Credits != 0 {
		t.Errorf("rows %+v", f.Rows)
	}
	if at := f.Rows[0].UpdatedAt; !at.Equal(time.Date(2024, 5, 1, 12, 34, 56, 0, time.UTC)) {
		t.Errorf("updated_at %v, want it to the second in UTC", at)
	}

	lines := "{\"user_id\":\"user_a\",\"credits\":1}\n{\"user_id\":\"user_b\",\"credits\":1.5}\n\n{\"user_id\":\"user_c\",\"credits\":3}\n"
	if f, err = Parse([]byte(lines), JSON); err != nil {
		t.Fatal(err)
	}
	wantBad(t, f, map[int]string{2: "fractional"})
	if len(f.Rows) != 2 || f.Rows[1].Line != 4 {
		t.Errorf("JSON lines: rows %+v", f.Rows)
	}

	for name, broken := range map[string]string{"cut": `[{"user_id":"user_a","credits":1},{"user_id":`, "text": "hello", "empty": "  \n"} {
		if _, err := Parse([]byte(broken), JSON); err == nil {
			t.Errorf("%s: parsed, want the file refused", name)
		}
	}
}

func TestDetectFormat(t *testing.T) {
	for _, c := range []struct {
		name, data string
		want       Format
	}{
		{"credits.csv", "[", CSV},
		{"credits.JSON", "user_id", JSON},
		{"rows.ndjson", "", JSON},
		{"-", "\xef\xbb\xbf  [{}]", JSON},
		{"-", "{\"kind\":\"UserCreditsExport\"}", JSON},
		{"dump", "user_id,credits\n", CSV},
	} {
		if got := DetectFormat(c.name, []byte(c.data)); got != c.want {
			t.Errorf("DetectFormat(%q, %q) = %s, want %s", c.name, c.data, got, c.want)
		}
	}
	if _, err := ParseFormat("xml"); err == nil {
		t.Error("ParseFormat(xml) accepted")
	}
}

func TestParseTime(t *testing.T) {
	want := time.Date(2024, 5, 1, 10, 34, 56, 0, time.UTC)
	for _, text := range []string{"2024-05-01 12:34:56+02", "2024-05-01 12:34:56.999+02:00", "2024-05-01T10:34:56Z", "2024-05-01 10:34:56",
		"2024-05-01 12:34:56.5+0200"} {
		got, err := ParseTime(text)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", text, got, err, want)
		}
	}
	for _, text := range []string{"2024-05-01", "1714559696", "2024-13-01 00:00:00+00", "now"} {
		if _, err := ParseTime(text); err == nil {
			t.Errorf("ParseTime(%q) accepted", text)
		}
	}
}
