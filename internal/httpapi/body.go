package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"slices"
	"strings"

	"github.com/gitread/usercredits-operator/internal/account"
)

// MaxCredits is the largest balance the API accepts (account.MaxBalance, 2^53-1).
const MaxCredits = account.MaxBalance

// maxNumberLiteral bounds the text of a credits number; the largest valid value has 16 digits.
const maxNumberLiteral = 64

var errInvalidCredits = errors.New("invalid credits value")

// Body members the API reads.
const (
	fieldCredits    = "credits"
	fieldTTLSeconds = "ttlSeconds"
)

// fieldError says which member of a body was invalid; errInvalidCredits when the body is
// not a single JSON object at all.
type fieldError struct{ field string }

func (e fieldError) Error() string { return "invalid " + e.field + " value" }

// ParseCredits reads {"credits": N} and returns N. It accepts exactly one JSON object with a
// "credits" member whose value is an integral number in [0, MaxCredits] ("10", "10.0" and
// "1e1" are all ten), other members ignored; anything else — missing, null, strings,
// booleans, fractions, negatives, out-of-range values, duplicate "credits" members,
// malformed JSON, trailing data — is an error.
func ParseCredits(body []byte) (int64, error) {
	n, err := parseFields(body, fieldCredits)
	if err != nil {
		return 0, err
	}
	if !hasField(n, fieldCredits) {
		return 0, errInvalidCredits
	}
	return n[fieldCredits], nil
}

// parseFields reads exactly one JSON object and the integral numbers in [0, MaxCredits] of
// its members named in fields, by the rules of ParseCredits; members not named are ignored,
// and a named member that is absent is absent from the result. A named member given twice
// is ambiguous and invalid.
func parseFields(body []byte, fields ...string) (map[string]int64, error) {
	return parseMembers(body, false, fields...)
}

// parseOnlyFields is parseFields for a body whose members all have defaults (a hold's): a
// member it does not name is invalid, so that a misspelt one ({"credit":1}) is refused
// rather than read as absent, which would capture a whole hold.
func parseOnlyFields(body []byte, fields ...string) (map[string]int64, error) {
	return parseMembers(body, true, fields...)
}

func parseMembers(body []byte, onlyNamed bool, fields ...string) (map[string]int64, error) {
	found, err := members(body, onlyNamed, fields...)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(found))
	for key, raw := range found {
		n, err := parseCreditsNumber(string(raw))
		if err != nil {
			return nil, fieldError{key}
		}
		out[key] = n
	}
	return out, nil
}

// members reads exactly one JSON object and returns the raw values of its members named in
// fields; with onlyNamed, any other member is invalid. A named member given twice is
// ambiguous and invalid (fieldError); a body that is not one object is errInvalidCredits.
func members(body []byte, onlyNamed bool, fields ...string) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errInvalidCredits
	}
	found := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, errInvalidCredits
		}
		key, ok := tok.(string)
		if !ok {
			return nil, errInvalidCredits
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, errInvalidCredits
		}
		if slices.Contains(fields, key) {
			if _, dup := found[key]; dup {
				return nil, fieldError{key} // ambiguous: which one did the client mean?
			}
			found[key] = value
		} else if onlyNamed {
			return nil, errInvalidCredits
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, errInvalidCredits
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errInvalidCredits // trailing data after the object
	}
	return found, nil
}

// hasField reports whether a parsed body has field.
func hasField(fields map[string]int64, field string) bool {
	_, ok := fields[field]
	return ok
}

// parseCreditsNumber converts a JSON value to a balance. big.Float keeps fractions that a
// float64 would round away (9007199254740990.5) and parses huge exponents without work.
func parseCreditsNumber(literal string) (int64, error) {
	if literal == "" || len(literal) > maxNumberLiteral || !isJSONNumber(literal) {
		return 0, errInvalidCredits
	}
	f, _, err := big.ParseFloat(literal, 10, 512, big.ToNearestEven)
	if err != nil || f.IsInf() || f.Sign() < 0 || !f.IsInt() {
		return 0, errInvalidCredits
	}
	if f.Sign() == 0 && strings.ContainsAny(mantissa(literal), "123456789") {
		return 0, errInvalidCredits // a tiny fraction such as 1e-999999999 that underflowed to 0
	}
	n, acc := f.Int64()
	if acc != big.Exact || n > MaxCredits {
		return 0, errInvalidCredits
	}
	return n, nil
}

// isJSONNumber reports whether s is a JSON number (RFC 8259), as opposed to a string,
// literal, object or array; the decoder has already checked its syntax.
func isJSONNumber(s string) bool {
	c := s[0]
	return c == '-' || (c >= '0' && c <= '9')
}

func mantissa(literal string) string {
	if i := strings.IndexAny(literal, "eE"); i >= 0 {
		return literal[:i]
	}
	return literal
}
