package migrate

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

// exportRows are rows as an export of this operator holds them: plain balances, and a user
// with holds and lots.
func exportRows() []Row {
	at := func(s string) metav1.Time {
		t, _ := time.Parse(time.RFC3339, s)
		return metav1.NewTime(t)
	}
	expires := at("2031-01-31T00:00:00Z")
	return []Row{
		{UserID: "user_a", Credits: 25, UpdatedAt: at("2024-05-01T12:34:56Z").Time},
		{UserID: "user_b,\"quoted\"", Credits: 0},
		{UserID: "user_c", Credits: 9, UpdatedAt: at("2025-01-02T03:04:05Z").Time,
			Holds: []creditsv1alpha1.Reservation{{ID: "rsv_0123456789abcdef", Credits: 3, ExpiresAt: at("2030-01-01T00:00:00Z"),
				From: []creditsv1alpha1.LotCredits{{Lot: "lot_00000000000000aa", Credits: 3}}}},
			Lots: []creditsv1alpha1.Lot{
				{ID: "balance", Credits: 4, Remaining: 4, Priority: 50, Source: "set", GrantedAt: at("2024-01-01T00:00:00Z")},
				{ID: "lot_00000000000000aa", Credits: 10, Remaining: 5, Priority: 10, Source: "stripe", Reference: "cs_live_1",
					Reason: "spring, \"promo\"", ExpiresAt: &expires, GrantedAt: at("2024-02-01T00:00:00Z")},
			}},
	}
}

// numbered sets each row's Line to where an export writes it (a header or "users" line first).
func numbered(rows []Row, first int) []Row {
	out := make([]Row, len(rows))
	for i, r := range rows {
		r.Line = first + i
		out[i] = r
	}
	return out
}

func TestExportFormatsReadBack(t *testing.T) {
	rows := exportRows()
	for _, c := range []struct {
		format Format
		write  func(*bytes.Buffer, []Row) error
		first  int // the line of the first row: after the CSV header, after the JSON head
	}{
		{CSV, func(b *bytes.Buffer, r []Row) error { return WriteCSV(b, r) }, 2},
		{JSON, func(b *bytes.Buffer, r []Row) error { return WriteJSON(b, r) }, 2},
	} {
		var first bytes.Buffer
		if err := c.write(&first, rows); err != nil {
			t.Fatal(err)
		}
		f, err := Parse(first.Bytes(), DetectFormat("-", first.Bytes()))
		if err != nil {
			t.Fatalf("%s: %v\n%s", c.format, err, first.String())
		}
		if len(f.Bad) > 0 {
			t.Fatalf("%s: bad rows %v in\n%s", c.format, f.Bad, first.String())
		}
		// JSON compares the times as instants (metav1.Time reads them in time.Local).
		if got, want := asJSON(t, f.Rows), asJSON(t, numbered(rows, c.first)); got != want {
			t.Errorf("%s: read back\n%s\nwant\n%s", c.format, got, want)
		}
		var second bytes.Buffer
		if err := c.write(&second, f.Rows); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first.Bytes(), second.Bytes()) {
			t.Errorf("%s: written again differs:\n%s\nthen\n%s", c.format, first.String(), second.String())
		}
	}
}

func asJSON(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestWriteJSONHasTotals(t *testing.T) {
	var b bytes.Buffer
	rows := append(exportRows(), Row{UserID: "user_max", Credits: 1<<53 - 1}, Row{UserID: "user_max2", Credits: 1<<53 - 1})
	if err := WriteJSON(&b, rows); err != nil {
		t.Fatal(err)
	}
	head := strings.SplitN(b.String(), "\n", 2)[0]
	// The credits' sum is past 2^53: it is written exactly, not as a float.
	want := `{"kind":"UserCreditsExport","totals":{"users":5,"credits":18014398509482016,"reserved":3,"holds":1,"lots":2},"users":[`
	if head != want {
		t.Errorf("head %s\nwant %s", head, want)
	}
}

func TestWriteCSVColumns(t *testing.T) {
	var b bytes.Buffer
	if err := WriteCSV(&b, exportRows()[:2]); err != nil {
		t.Fatal(err)
	}
	want := "user_id,credits,updated_at,reserved,reservations,lots\n" +
		"user_a,25,2024-05-01T12:34:56Z,0,,\n" +
		"\"user_b,\"\"quoted\"\"\",0,,0,,\n"
	if b.String() != want {
		t.Errorf("CSV:\n%s\nwant\n%s", b.String(), want)
	}
}

func TestRowsWithHoldsAndLotsAreChecked(t *testing.T) {
	data := "user_id,credits,reserved,reservations,lots\n" +
		// 2: lots that add up to 4, not 5
		`user_a,5,0,,"[{""id"":""balance"",""credits"":4,""remaining"":4,""priority"":50,""source"":""set"",""grantedAt"":""2024-01-01T00:00:00Z""}]"` + "\n" +
		// 3: reserved that is not the holds' sum
		`user_b,1,7,"[{""id"":""rsv_1"",""credits"":3,""expiresAt"":""2030-01-01T00:00:00Z""}]",` + "\n" +
		// 4: a field no hold has
		`user_c,1,3,"[{""id"":""rsv_1"",""credits"":3,""expiresAt"":""2030-01-01T00:00:00Z"",""owner"":""x""}]",` + "\n" +
		// 5: good
		`user_d,1,3,"[{""id"":""rsv_1"",""credits"":3,""expiresAt"":""2030-01-01T00:00:00Z""}]",` + "\n"
	f, err := Parse([]byte(data), CSV)
	if err != nil {
		t.Fatal(err)
	}
	wantBad(t, f, map[int]string{2: "the lots hold 4 credits, the balance is 5", 3: "is not the sum of the holds' credits (3)", 4: "unknown field"})
	if len(f.Rows) != 1 || f.Rows[0].UserID != "user_d" || f.Rows[0].Reserved() != 3 {
		t.Errorf("rows %+v", f.Rows)
	}
}
