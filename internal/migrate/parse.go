package migrate

import (
	"bytes"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/gitread/usercredits-operator/internal/account"
)

// Format is a file format: CSV or JSON.
type Format string

// Formats.
const (
	CSV  Format = "csv"
	JSON Format = "json"
)

// ParseFormat reads a --format value; "" and "auto" leave it to DetectFormat.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(s)); f {
	case "", "auto":
		return "", nil
	case CSV, JSON:
		return f, nil
	}
	return "", fmt.Errorf("unknown format %q: csv or json", s)
}

// DetectFormat picks a file's format from its name (.csv, .json, .jsonl, .ndjson), else
// from its first byte: JSON starts with '[' or '{', which no header of the credits table does.
func DetectFormat(name string, data []byte) Format {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".csv":
		return CSV
	case ".json", ".jsonl", ".ndjson":
		return JSON
	}
	trimmed := bytes.TrimLeft(bytes.TrimPrefix(data, utf8BOM), " \t\r\n")
	if len(trimmed) > 0 && (trimmed[0] == '[' || trimmed[0] == '{') {
		return JSON
	}
	return CSV
}

// File is a whole file, read and checked before anything is written: the rows to import, in
// file order, and the bad rows, in line order.
type File struct {
	Rows []Row
	Bad  []BadRow
	// Read counts the rows the file holds, good and bad.
	Read int
}

// Parse reads and checks a whole file. An error means the file as a whole cannot be read
// (no header, an unknown column in it, broken JSON): nothing of it is to be written. Each
// bad row is reported with its line and left out. A user on several rows is imported from
// the first valid one; each later one is a bad row that names it (and says whether the
// two differ, for a person to settle which is right).
func Parse(data []byte, format Format) (File, error) {
	var raws []rawRow
	var bad []BadRow
	var err error
	switch format {
	case CSV:
		raws, bad, err = readCSV(data)
	case JSON:
		raws, bad, err = readJSON(data)
	default:
		return File{}, fmt.Errorf("unknown format %q", format)
	}
	if err != nil {
		return File{}, err
	}
	f := File{Read: len(raws) + len(bad), Bad: bad}
	rows := make([]Row, 0, len(raws))
	for _, raw := range raws {
		row, err := raw.check()
		if err != nil {
			f.Bad = append(f.Bad, BadRow{Line: raw.line, Reason: err.Error()})
			continue
		}
		rows = append(rows, row)
	}
	var dup []BadRow
	f.Rows, dup = dedupe(rows)
	f.Bad = append(f.Bad, dup...)
	sort.SliceStable(f.Bad, func(i, j int) bool { return f.Bad[i].Line < f.Bad[j].Line })
	return f, nil
}

// dedupe keeps each user's first row and reports every later one.
func dedupe(rows []Row) ([]Row, []BadRow) {
	first := make(map[account.UserID]int, len(rows)) // user → index of the first row
	kept := make([]Row, 0, len(rows))
	var bad []BadRow
	for i, r := range rows {
		j, seen := first[r.UserID]
		if !seen {
			first[r.UserID] = i
			kept = append(kept, r)
			continue
		}
		how := "the same values"
		if !same(rows[j], r) {
			how = fmt.Sprintf("different values (credits %d here, %d there)", r.Credits, rows[j].Credits)
		}
		bad = append(bad, BadRow{Line: r.Line, Reason: fmt.Sprintf("duplicate user %s: line %d has it already, with %s; that line is imported",
			strconv.Quote(string(r.UserID)), rows[j].Line, how)})
	}
	return kept, bad
}

// same reports whether two rows of a user say the same thing.
func same(a, b Row) bool {
	return a.Credits == b.Credits && a.UpdatedAt.Equal(b.UpdatedAt) && jsonList(a.Holds) == jsonList(b.Holds) && jsonList(a.Lots) == jsonList(b.Lots)
}
