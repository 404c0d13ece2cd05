package account

import (
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
)

// The key ledgers and the closed holds are stored as one line of text each, the entries
// oldest first, separated by ';', their fields by ','. Numbers are decimal. Times (unix
// seconds) are written as the difference from the entry before (the first: from 0), so
// that a day of requests costs a few digits an entry instead of ten and a JSON field name.
// A key ledger's result (the balance the request answered) is written as its difference
// from what the operation alone gives after the entry before (expectedResult): nothing at
// all for a consume, reserve or grant that no other change came between.
//
// A key ledger entry is
//
//	<key hash, 16 characters><op, one letter><amount>,[<result>],<time>[,<id>[,<terms>]]
//
// (the id: the hold or lot the request made or named; terms: a grant's lot terms,
// hashed); a closed hold is
//
//	<hold id>,<state, one letter><credits held>,<captured>,<result>,<time>
//
// Records written before this form hold JSON lists ("[" first, with field names and the
// key hash as 32 hex digits): they are read as they are, and written in this form the next
// time their part changes. Text that reads as neither is damaged.

// ledgerCodes are the one-letter codes of a key ledger's operations: the history's
// (every kind, so that any entry an earlier release recorded is written again), and 'G'
// for a CreditGrant's grant.
var ledgerCodes = func() map[OpKind]byte {
	m := map[OpKind]byte{opCreditGrant: 'G'}
	for k, c := range kindCodes {
		m[k] = c[0]
	}
	return m
}()

var ledgerKinds = func() map[byte]OpKind {
	m := map[byte]OpKind{}
	for k, c := range ledgerCodes {
		m[c] = k
	}
	return m
}()

// closedCodes are the one-letter codes of how a hold ended.
var closedCodes = map[string]byte{closedCaptured: 'c', closedReleased: 'r', closedExpired: 'e'}

// encodeKeys is the stored text of a key ledger; ok is false when an entry would not read
// back (a field holding a separator: never, for what decisions record).
func encodeKeys(entries []appliedKey) (text string, ok bool) {
	var b strings.Builder
	b.Grow(len(entries) * 40)
	var result, at int64
	for i, e := range entries {
		if _, known := ledgerCodes[e.Op]; !known || !validKeyHash(e.Key) || !validOptional(e.ID, e.Terms) {
			return "", false
		}
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(e.Key)
		b.WriteByte(ledgerCodes[e.Op])
		b.WriteString(strconv.FormatInt(e.Amount, 10))
		b.WriteByte(',')
		if d := e.Result - expectedResult(e, result); d != 0 {
			b.WriteString(strconv.FormatInt(d, 10))
		}
		b.WriteByte(',')
		b.WriteString(strconv.FormatInt(e.At-at, 10))
		result, at = e.Result, e.At
		writeOptional(&b, e.ID, e.Terms)
	}
	return b.String(), true
}

// expectedResult is the balance e's operation alone leaves after previous, the result of
// the entry before it (0 for the first): what a key ledger stores e's result against. It
// wraps rather than overflows on a hand-edited amount: encoding and decoding both wrap, so
// the result still reads back as written.
func expectedResult(e appliedKey, previous int64) int64 {
	switch e.Op {
	case OpConsume, OpReserve:
		return previous - e.Amount
	case OpGrant, opCreditGrant:
		return previous + e.Amount
	case OpSet:
		return e.Amount
	}
	return previous
}

// writeOptional writes the trailing fields that are set, and the empty ones before them.
func writeOptional(b *strings.Builder, fields ...string) {
	last := len(fields) - 1
	for last >= 0 && fields[last] == "" {
		last--
	}
	for _, f := range fields[:last+1] {
		b.WriteByte(',')
		b.WriteString(f)
	}
}

// decodeKeys reads a key ledger in either form; ok is false when the text is neither.
func decodeKeys(text string) (entries []appliedKey, ok bool) {
	if strings.HasPrefix(text, "[") {
		return decodeKeysJSON(text)
	}
	var result, at int64
	for part := range strings.SplitSeq(text, ";") {
		if len(part) < keyChars+2 || !validKeyHash(part[:keyChars]) {
			return nil, false
		}
		kind, known := ledgerKinds[part[keyChars]]
		fields := strings.Split(part[keyChars+1:], ",")
		if !known || len(fields) < 3 || len(fields) > 5 {
			return nil, false
		}
		n, err1 := strconv.ParseInt(fields[0], 10, 64)
		var dr int64
		var err2 error
		if fields[1] != "" {
			dr, err2 = strconv.ParseInt(fields[1], 10, 64)
		}
		dt, err3 := strconv.ParseInt(fields[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, false
		}
		e := appliedKey{Key: part[:keyChars], Op: kind, Amount: n}
		e.Result, e.At = expectedResult(e, result)+dr, at+dt
		result, at = e.Result, e.At
		if len(fields) > 3 {
			e.ID = fields[3]
		}
		if len(fields) > 4 {
			e.Terms = fields[4]
		}
		if !validOptional(e.ID, e.Terms) {
			return nil, false
		}
		entries = append(entries, e)
	}
	return entries, true
}

// decodeKeysJSON reads a key ledger as records written before the text form stored it:
// each key hash (32 hex digits) becomes the text form's (keyHashOf), so that a retry of a
// request recorded then is still found.
func decodeKeysJSON(text string) ([]appliedKey, bool) {
	var old []struct {
		Key    string `json:"k"`
		Op     OpKind `json:"op"`
		Amount int64  `json:"n"`
		Result int64  `json:"r"`
		At     int64  `json:"t"`
		ID     string `json:"id,omitempty"`
		Terms  string `json:"h,omitempty"`
	}
	if json.Unmarshal([]byte(text), &old) != nil {
		return nil, false
	}
	entries := make([]appliedKey, 0, len(old))
	for _, e := range old {
		sum, err := hex.DecodeString(e.Key)
		if _, known := ledgerCodes[e.Op]; err != nil || len(sum) != 16 || !known || !validOptional(e.ID, e.Terms) {
			return nil, false
		}
		entries = append(entries, appliedKey{Key: keyHashOf(sum), Op: e.Op, Amount: e.Amount, Result: e.Result, At: e.At, ID: e.ID, Terms: e.Terms})
	}
	return entries, true
}

// validOptional reports whether optional fields can be written in the text form: no
// separators (every ID the store names, and every terms digest, passes).
func validOptional(fields ...string) bool {
	for _, f := range fields {
		if f != "" && !idChars(f) {
			return false
		}
	}
	return true
}

// encodeClosed is the stored text of the closed holds; ok is false when an entry would not
// read back (never, for what decisions record: holds are checked on decode and encode).
func encodeClosed(entries []closedHold) (text string, ok bool) {
	var b strings.Builder
	b.Grow(len(entries) * 40)
	var at int64
	for i, e := range entries {
		if _, known := closedCodes[e.State]; !known || !ValidHoldID(e.ID) {
			return "", false
		}
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(e.ID)
		b.WriteByte(',')
		b.WriteByte(closedCodes[e.State])
		b.WriteString(strconv.FormatInt(e.Held, 10))
		b.WriteByte(',')
		b.WriteString(strconv.FormatInt(e.Captured, 10))
		b.WriteByte(',')
		b.WriteString(strconv.FormatInt(e.Result, 10))
		b.WriteByte(',')
		b.WriteString(strconv.FormatInt(e.At-at, 10))
		at = e.At
	}
	return b.String(), true
}

// decodeClosed reads the closed holds in either form; ok is false when the text is neither.
func decodeClosed(text string) (entries []closedHold, ok bool) {
	if strings.HasPrefix(text, "[") {
		if json.Unmarshal([]byte(text), &entries) != nil {
			return nil, false
		}
		for _, e := range entries {
			if _, known := closedCodes[e.State]; !known || !ValidHoldID(e.ID) {
				return nil, false
			}
		}
		return entries, true
	}
	var at int64
	for part := range strings.SplitSeq(text, ";") {
		fields := strings.Split(part, ",")
		if len(fields) != 5 || !ValidHoldID(fields[0]) || fields[1] == "" {
			return nil, false
		}
		state := ""
		for s, c := range closedCodes {
			if c == fields[1][0] {
				state = s
			}
		}
		held, err1 := strconv.ParseInt(fields[1][1:], 10, 64)
		captured, err2 := strconv.ParseInt(fields[2], 10, 64)
		result, err3 := strconv.ParseInt(fields[3], 10, 64)
		dt, err4 := strconv.ParseInt(fields[4], 10, 64)
		if state == "" || err1 != nil || err2 != nil || err3 != nil || err4 != nil {
			return nil, false
		}
		at += dt
		entries = append(entries, closedHold{ID: fields[0], State: state, Held: held, Captured: captured, Result: result, At: at})
	}
	return entries, true
}
