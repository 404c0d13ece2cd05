package migrate

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// readCSV reads a CSV file as Postgres' `\copy … csv header` writes it: a header naming the
// columns (in any order), then one row per user. A header that names a column this tool
// does not know refuses the whole file (it is not an export of the credits table, or of
// this operator); a row whose field count differs from the header's is a bad row.
func readCSV(data []byte) ([]rawRow, []BadRow, error) {
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, utf8BOM)))
	r.FieldsPerRecord = -1 // a row with too many or too few fields is one bad row, not the end
	r.ReuseRecord = true
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		return nil, nil, errors.New("the file is empty: want a header line (user_id,credits,updated_at) and one row per user")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("line 1: %v", err)
	}
	names, err := headerColumns(header)
	if err != nil {
		return nil, nil, err
	}
	rows := make([]rawRow, 0, bytes.Count(data, []byte{'\n'})) // a row a line, mostly: no copying as it grows
	var bad []BadRow
	for {
		record, err := r.Read()
		if errors.Is(err, io.EOF) {
			return rows, bad, nil
		}
		var parseErr *csv.ParseError
		if errors.As(err, &parseErr) && !errors.Is(err, csv.ErrFieldCount) {
			// The reader has gone past the line; what follows reads on its own.
			bad = append(bad, BadRow{Line: parseErr.StartLine, Reason: "malformed CSV: " + parseErr.Err.Error()})
			continue
		}
		if err != nil && !errors.Is(err, csv.ErrFieldCount) {
			return nil, nil, err
		}
		line, _ := r.FieldPos(0)
		if len(record) != len(names) {
			reason := fmt.Sprintf("%d values, the header names %d columns", len(record), len(names))
			if len(record) > len(names) {
				reason += " (a value in an unknown column)"
			}
			bad = append(bad, BadRow{Line: line, Reason: reason})
			continue
		}
		raw := rawRow{line: line}
		for i, c := range names {
			raw.values[c], raw.given[c] = record[i], true
		}
		rows = append(rows, raw)
	}
}

var utf8BOM = []byte("\xef\xbb\xbf")

// headerColumns checks a CSV header (known names, none twice, user_id and credits there)
// and returns the column of each field.
func headerColumns(header []string) ([]int, error) {
	names := make([]int, len(header))
	seen := map[string]bool{}
	for i, h := range header {
		name := strings.ToLower(strings.TrimSpace(h))
		c, known := column(name)
		switch {
		case !known:
			return nil, fmt.Errorf("line 1: unknown column %q: a file of the credits table has %s (and an export of this operator %s); select only those, e.g. \\copy (select user_id, credits, updated_at from credits) to 'credits.csv' csv header",
				h, strings.Join(columns[:3], ","), strings.Join(columns[3:], ","))
		case seen[name]:
			return nil, fmt.Errorf("line 1: column %q named twice", name)
		}
		seen[name] = true
		names[i] = c
	}
	for _, need := range []string{ColUserID, ColCredits} {
		if !seen[need] {
			return nil, fmt.Errorf("line 1: no %s column: the header is %q", need, strings.Join(header, ","))
		}
	}
	return names, nil
}

// WriteCSV writes rows as an export: every column, in columns' order, holds and lots as
// JSON arrays in their columns (empty for none), times in RFC 3339 UTC. The same rows always
// give the same bytes.
func WriteCSV(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(columns); err != nil {
		return err
	}
	record := make([]string, len(columns))
	for _, r := range rows {
		record[0] = string(r.UserID)
		record[1] = strconv.FormatInt(r.Credits, 10)
		record[2] = FormatTime(r.UpdatedAt)
		record[3] = strconv.FormatInt(r.Reserved(), 10)
		record[4] = jsonList(r.Holds)
		record[5] = jsonList(r.Lots)
		if err := cw.Write(record); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// jsonList is a column of holds or lots: compact JSON, "" for none.
func jsonList[T any](items []T) string {
	if len(items) == 0 {
		return ""
	}
	data, _ := json.Marshal(items) // cannot fail: the CRD's plain types
	return string(data)
}
