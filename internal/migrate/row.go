// Package migrate moves balances into and out of a cluster: the import of an export of the
// service this operator replaces (Supabase's `credits` table: user_id, credits, updated_at)
// and the export of every user's balance, holds and lots, for finance or for a move to
// another cluster. It is what `kubectl credits` (cmd/kubectl-credits) runs.
//
// Files, top to bottom (a file uses only those below it):
//
//   - progress.go, report.go: the progress bar, the rows a person must hear of, the summary;
//   - importer.go, writes.go: the import: one LIST of what the namespace holds, then each
//     row that needs it written by one create or one guarded patch, rate-limited and a few
//     at a time, decided again on a fresh read when the user changed under it;
//   - export.go: the export; list.go: a LIST whose pages are one snapshot;
//   - plan.go: what each row comes to against what the cluster holds (create, already
//     imported, unchanged, differs, overwrite, contested), and the object or patch that
//     writes it;
//   - parse.go, csv.go, jsonrows.go: the file formats, read and written;
//   - row.go: a row and the rules of its values (this file).
//
// Exactly once: every object the import writes records, in the same write, a digest of the
// row it was written from (account.ImportedAnnotation). A row whose digest the user's
// object records was imported already, by this run or an earlier one, and is never
// written again, whatever the API has done to the balance since.
//
// Nothing below list.go talks to the apiserver: parsing, validation and every decision
// are pure functions, unit-tested without a cluster (cluster_test.go is the rest).
package migrate

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
)

// Column (CSV) and key (JSON) names. The first three are the `credits` table's own; the
// others are what an export of this operator adds, so that its own export imports whole.
const (
	ColUserID       = "user_id"
	ColCredits      = "credits"
	ColUpdatedAt    = "updated_at"
	ColReserved     = "reserved"
	ColReservations = "reservations"
	ColLots         = "lots"
)

// columns are the names a file may use, in the order an export writes them.
var columns = []string{ColUserID, ColCredits, ColUpdatedAt, ColReserved, ColReservations, ColLots}

// Indices of the columns in a rawRow.
const (
	iUserID = iota
	iCredits
	iUpdatedAt
	iReserved
	iReservations
	iLots
	numColumns
)

// column is name's index in columns; false when no column has that name.
func column(name string) (int, bool) {
	for i, c := range columns {
		if c == name {
			return i, true
		}
	}
	return 0, false
}

// Row is one user's balance as a file gives it, checked.
type Row struct {
	// Line is where the row starts in the file (1 is the first line; a CSV header is line 1).
	Line   int
	UserID account.UserID
	// Credits is the available balance (spec.credits).
	Credits int64
	// UpdatedAt is when the balance last changed at the source, to the second (the
	// precision of status.updatedAt); zero when the file has no time for it (a NULL).
	UpdatedAt time.Time
	// Holds and Lots are what an export of this operator carries besides the balance (as
	// the API stores them); nil for a row of the `credits` table.
	Holds []creditsv1alpha1.Reservation
	Lots  []creditsv1alpha1.Lot
}

// Full reports whether r carries holds or lots, not only a balance.
func (r Row) Full() bool { return len(r.Holds) > 0 || len(r.Lots) > 0 }

// Reserved is the sum of r's holds.
func (r Row) Reserved() int64 {
	var n int64
	for _, h := range r.Holds {
		n += h.Credits
	}
	return n
}

// BadRow is a row that is skipped, and why.
type BadRow struct {
	Line   int
	Reason string
}

func (b BadRow) String() string { return fmt.Sprintf("line %d: %s", b.Line, b.Reason) }

// rawRow is a row's values as text, before they are checked: what both formats produce.
type rawRow struct {
	line   int
	values [numColumns]string
	// given says which values were present at all (a JSON null or a missing key is not).
	given [numColumns]bool
}

// check turns raw into a Row, or says why it is bad.
func (raw rawRow) check() (Row, error) {
	r := Row{Line: raw.line}
	id := raw.values[iUserID]
	if id == "" {
		return r, fmt.Errorf("no %s", ColUserID)
	}
	user, err := account.ParseUserID(id)
	if err != nil {
		return r, fmt.Errorf("invalid user ID %s: 1 to %d bytes of UTF-8 without whitespace, control or invisible characters", strconv.Quote(id), account.MaxUserIDBytes)
	}
	r.UserID = user
	if r.Credits, err = parseCredits(raw.values[iCredits], raw.given[iCredits]); err != nil {
		return r, err
	}
	if r.UpdatedAt, err = ParseTime(raw.values[iUpdatedAt]); err != nil {
		return r, err
	}
	if r.Holds, err = decodeList[creditsv1alpha1.Reservation](raw.values[iReservations], ColReservations); err != nil {
		return r, err
	}
	if r.Lots, err = decodeList[creditsv1alpha1.Lot](raw.values[iLots], ColLots); err != nil {
		return r, err
	}
	if text := raw.values[iReserved]; text != "" {
		reserved, err := strconv.ParseInt(text, 10, 64)
		if held := r.Reserved(); err != nil || reserved != held {
			return r, fmt.Errorf("%s %q is not the sum of the holds' credits (%d)", ColReserved, text, held)
		}
	}
	if r.Full() {
		if err := checkFull(r); err != nil {
			return r, err
		}
	}
	return r, nil
}

// parseCredits reads a balance: a whole number from 0 to account.MaxBalance, as Postgres
// writes an integer or a numeric whose fraction is zero ("12", "12.00").
func parseCredits(text string, given bool) (int64, error) {
	if !given || text == "" {
		return 0, fmt.Errorf("no %s", ColCredits)
	}
	digits, negative := strings.CutPrefix(text, "-")
	whole, frac, hasFrac := strings.Cut(digits, ".")
	if !allDigits(whole) || hasFrac && !allDigits(frac) {
		return 0, fmt.Errorf("credits %q is not a whole number", text)
	}
	if negative && strings.Trim(whole+frac, "0") != "" {
		return 0, fmt.Errorf("negative credits %q: a balance is never below zero", text)
	}
	if strings.Trim(frac, "0") != "" {
		return 0, fmt.Errorf("fractional credits %q: a balance is a whole number of credits", text)
	}
	n, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || n > account.MaxBalance {
		return 0, fmt.Errorf("credits %q above the largest balance %d", text, int64(account.MaxBalance))
	}
	return n, nil
}

// allDigits reports whether s is one or more ASCII digits.
func allDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// decodeList reads a column of holds or lots: a JSON array as the API stores them (the
// CRD's field names), "" for none. Unknown fields are refused, as everywhere in a row.
func decodeList[T any](text, column string) ([]T, error) {
	if text == "" {
		return nil, nil
	}
	dec := json.NewDecoder(strings.NewReader(text))
	dec.DisallowUnknownFields()
	var out []T
	if err := dec.Decode(&out); err != nil || dec.More() {
		return nil, fmt.Errorf("bad %s: want a JSON array as an export writes it (%v)", column, err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// timeLayouts are the forms a time takes in an export: Postgres' text output of
// timestamptz ("2024-05-01 12:34:56.789+00") and of timestamp without a zone (read as
// UTC), and RFC 3339, which this operator's export writes.
var timeLayouts = []string{
	"2006-01-02 15:04:05.999999999Z07",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z0700",
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
}

// ParseTime reads an updated_at; "" (a NULL) is the zero time. It keeps whole seconds, as
// status.updatedAt does: a fraction would make a round trip differ from its source.
func ParseTime(text string) (time.Time, error) {
	if text == "" {
		return time.Time{}, nil
	}
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, text); err == nil {
			if t.Year() < 1 || t.Year() > 9999 {
				break
			}
			return t.UTC().Truncate(time.Second), nil
		}
	}
	return time.Time{}, fmt.Errorf("bad %s %q: want a time such as 2024-05-01 12:34:56+00 or 2024-05-01T12:34:56Z", ColUpdatedAt, text)
}

// FormatTime is how an export writes a time: RFC 3339 in UTC, to the second.
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// checkFull checks a row's holds and lots as the account model checks a stored record,
// so that a row the model would refuse to serve is a bad row, not a broken object.
func checkFull(r Row) error {
	obj := &creditsv1alpha1.UserCredits{Spec: creditsv1alpha1.UserCreditsSpec{UserID: string(r.UserID), Credits: r.Credits,
		Reservations: r.Holds, Lots: r.Lots}}
	if _, err := account.Summary(obj); err != nil {
		return fmt.Errorf("holds or lots the account model refuses: %v", err)
	}
	return nil
}
