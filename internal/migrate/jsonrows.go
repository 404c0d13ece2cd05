package migrate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"sort"
	"strconv"
)

// ExportKind marks the JSON an export writes: an object with the totals and the users.
const ExportKind = "UserCreditsExport"

// Totals sum an export, for reconciliation. Credits and Reserved are exact however many
// users there are (a sum of int64 balances can exceed int64).
type Totals struct {
	Users    int64    `json:"users"`
	Credits  *big.Int `json:"credits"`
	Reserved *big.Int `json:"reserved"`
	Holds    int64    `json:"holds"`
	Lots     int64    `json:"lots"`
}

// TotalsOf sums rows.
func TotalsOf(rows []Row) Totals {
	t := Totals{Credits: new(big.Int), Reserved: new(big.Int)}
	var n big.Int
	for _, r := range rows {
		t.Users++
		t.Credits.Add(t.Credits, n.SetInt64(r.Credits))
		t.Reserved.Add(t.Reserved, n.SetInt64(r.Reserved()))
		t.Holds += int64(len(r.Holds))
		t.Lots += int64(len(r.Lots))
	}
	return t
}

// jsonRow is a row as JSON writes it: the credits table's keys, then holds and lots when
// there are any.
type jsonRow struct {
	UserID       string `json:"user_id"`
	Credits      int64  `json:"credits"`
	UpdatedAt    string `json:"updated_at,omitempty"`
	Reserved     int64  `json:"reserved,omitempty"`
	Reservations any    `json:"reservations,omitempty"`
	Lots         any    `json:"lots,omitempty"`
}

// WriteJSON writes rows as an export: {"kind","totals","users":[…]}, one user a line, so
// that a diff of two exports is a diff of users. The same rows give the same bytes.
func WriteJSON(w io.Writer, rows []Row) error {
	bw := bufio.NewWriter(w)
	head, _ := json.Marshal(struct {
		Kind   string `json:"kind"`
		Totals Totals `json:"totals"`
	}{ExportKind, TotalsOf(rows)})
	bw.Write(head[:len(head)-1])
	bw.WriteString(`,"users":[`)
	for i, r := range rows {
		jr := jsonRow{UserID: string(r.UserID), Credits: r.Credits, UpdatedAt: FormatTime(r.UpdatedAt), Reserved: r.Reserved()}
		if len(r.Holds) > 0 {
			jr.Reservations = r.Holds
		}
		if len(r.Lots) > 0 {
			jr.Lots = r.Lots
		}
		line, _ := json.Marshal(jr) // cannot fail: plain values
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.WriteByte('\n')
		bw.Write(line)
	}
	bw.WriteString("\n]}\n")
	return bw.Flush()
}

// readJSON reads rows from JSON in any of three forms: an array of row objects (Postgres'
// json_agg), one row object after another (JSON lines: row_to_json per line), or this
// operator's export. Each row object has the column names as keys; a key this tool does not
// know makes its row bad. Broken JSON refuses the whole file, as nothing after it can be read.
func readJSON(data []byte) ([]rawRow, []BadRow, error) {
	data = bytes.TrimPrefix(data, utf8BOM)
	lc := &lineCounter{data: data, line: 1}
	dec := json.NewDecoder(bytes.NewReader(data))
	start := lc.next(0)
	if start >= len(data) {
		return nil, nil, errors.New("the file is empty: want a JSON array of rows, JSON lines, or an export")
	}
	var out objects
	switch data[start] {
	case '[':
		if _, err := dec.Token(); err != nil {
			return nil, nil, err
		}
		if err := out.array(dec, lc); err != nil {
			return nil, nil, err
		}
	case '{':
		if isExport(data[start:]) {
			if err := out.export(dec, lc); err != nil {
				return nil, nil, err
			}
			break
		}
		for dec.More() {
			if err := out.object(dec, lc); err != nil {
				return nil, nil, err
			}
		}
	default:
		return nil, nil, fmt.Errorf("line %d: want a JSON array or object, not %q", lc.at(start), data[start])
	}
	return out.rows, out.bad, nil
}

// isExport reports whether the object that starts data is an export ({"kind":…}), which
// this tool writes with kind first.
func isExport(data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return false
	}
	key, _ := dec.Token()
	value, _ := dec.Token()
	return key == "kind" && value == ExportKind
}

// objects collects rows and bad rows as a JSON file is walked.
type objects struct {
	rows []rawRow
	bad  []BadRow
}

// export walks an export's object to its users array.
func (o *objects) export(dec *json.Decoder, lc *lineCounter) error {
	if _, err := dec.Token(); err != nil { // {
		return err
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return fmt.Errorf("line %d: %v", lc.at(int(dec.InputOffset())), err)
		}
		if key != "users" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return fmt.Errorf("line %d: %v", lc.at(int(dec.InputOffset())), err)
			}
			continue
		}
		if t, err := dec.Token(); err != nil || t != json.Delim('[') {
			return fmt.Errorf("line %d: an export's users must be an array", lc.at(int(dec.InputOffset())))
		}
		if err := o.array(dec, lc); err != nil {
			return err
		}
	}
	return nil
}

// array reads the rows of an array whose '[' was read, and its ']'.
func (o *objects) array(dec *json.Decoder, lc *lineCounter) error {
	for dec.More() {
		if err := o.object(dec, lc); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("line %d: %v", lc.at(int(dec.InputOffset())), err)
	}
	return nil
}

// object reads one row object; a value that is not an object, or has a key no column has,
// is a bad row.
func (o *objects) object(dec *json.Decoder, lc *lineCounter) error {
	line := lc.at(lc.next(int(dec.InputOffset())))
	var fields map[string]json.RawMessage
	if err := dec.Decode(&fields); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			o.bad = append(o.bad, BadRow{Line: line, Reason: "not a JSON object"})
			return nil
		}
		return fmt.Errorf("line %d: malformed JSON: %v", line, err)
	}
	var unknown []string
	for key := range fields {
		if _, ok := column(key); !ok {
			unknown = append(unknown, strconv.Quote(key))
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		o.bad = append(o.bad, BadRow{Line: line, Reason: fmt.Sprintf("unknown key %v", unknown)})
		return nil
	}
	raw := rawRow{line: line}
	for c, key := range columns { // in the columns' order: the first bad value is the one reported
		value, ok := fields[key]
		if !ok {
			continue
		}
		text, given, err := jsonValue(key, value)
		if err != nil {
			o.bad = append(o.bad, BadRow{Line: line, Reason: err.Error()})
			return nil
		}
		raw.values[c], raw.given[c] = text, given
	}
	o.rows = append(o.rows, raw)
	return nil
}

// jsonValue is a row value as the text a CSV field would hold: a string's contents, a
// number's digits, an array's JSON; null is not given.
func jsonValue(key string, value json.RawMessage) (string, bool, error) {
	if string(value) == "null" {
		return "", false, nil
	}
	switch key {
	case ColReservations, ColLots:
		return string(value), true, nil
	case ColCredits, ColReserved:
		if value[0] != '"' {
			return string(value), true, nil
		}
	}
	var s string
	if err := json.Unmarshal(value, &s); err != nil {
		return "", false, fmt.Errorf("%s must be a string, not %s", key, value)
	}
	return s, true, nil
}

// lineCounter turns byte offsets, visited in increasing order, into line numbers.
type lineCounter struct {
	data []byte
	off  int
	line int
}

// at is the line of offset off (not below the last one asked for).
func (lc *lineCounter) at(off int) int {
	off = min(off, len(lc.data))
	if off > lc.off {
		lc.line += bytes.Count(lc.data[lc.off:off], []byte{'\n'})
		lc.off = off
	}
	return lc.line
}

// next is the offset of the first byte at or after off that is not white space or a comma:
// where the next value starts.
func (lc *lineCounter) next(off int) int {
	for off < len(lc.data) {
		switch lc.data[off] {
		case ' ', '\t', '\r', '\n', ',':
			off++
		default:
			return off
		}
	}
	return off
}
