package httpapi

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseCreditsAccepts(t *testing.T) {
	cases := map[string]int64{
		`{"credits":0}`:                          0,
		`{"credits":10}`:                         10,
		` { "credits" : 7 } `:                    7,
		`{"credits":10.0}`:                       10,
		`{"credits":1e1}`:                        10,
		`{"credits":1E+2}`:                       100,
		`{"credits":-0}`:                         0,
		`{"credits":9007199254740991}`:           MaxCredits,
		`{"credits":5,"note":"ignored"}`:         5,
		`{"other":{"credits":-1},"credits":3}`:   3,
		"{\"credits\":4}\n":                      4,
		`{"credits":0e-999999999}`:               0,
		`{"credits":123.000000000000000000000}`:  123,
		`{"credits":9.007199254740991e15}`:       MaxCredits,
		`{"credits":1.5e1}`:                      15,
		`{"credits":2,"x":[1,2,{"credits":-9}]}`: 2,
	}
	for body, want := range cases {
		got, err := ParseCredits([]byte(body))
		if err != nil || got != want {
			t.Errorf("ParseCredits(%s) = %d, %v; want %d", body, got, err, want)
		}
	}
}

// invalidBodies is every body that must be answered 400 "Invalid credits value"; the HTTP
// integration tests reuse it.
var invalidBodies = map[string]string{
	"missing":                    `{}`,
	"other member only":          `{"credit":5}`,
	"null":                       `{"credits":null}`,
	"string":                     `{"credits":"5"}`,
	"empty string":               `{"credits":""}`,
	"boolean":                    `{"credits":true}`,
	"array":                      `{"credits":[5]}`,
	"object":                     `{"credits":{"value":5}}`,
	"negative":                   `{"credits":-1}`,
	"negative fraction":          `{"credits":-0.5}`,
	"fraction":                   `{"credits":2.5}`,
	"fraction near max":          `{"credits":9007199254740990.5}`,
	"tiny fraction":              `{"credits":1e-999999999}`,
	"small exponent fraction":    `{"credits":15e-1}`,
	"above 2^53-1":               `{"credits":9007199254740992}`,
	"int64 overflow":             `{"credits":9223372036854775808}`,
	"huge exponent":              `{"credits":1e999999999}`,
	"very long number":           `{"credits":` + strings.Repeat("1", 100) + `}`,
	"NaN":                        `{"credits":NaN}`,
	"Infinity":                   `{"credits":Infinity}`,
	"hex":                        `{"credits":0x10}`,
	"leading zero":               `{"credits":012}`,
	"plus sign":                  `{"credits":+5}`,
	"duplicate credits":          `{"credits":1,"credits":2}`,
	"malformed":                  `{"credits":5`,
	"malformed key":              `{credits:5}`,
	"single quotes":              `{'credits':5}`,
	"trailing comma":             `{"credits":5,}`,
	"trailing data":              `{"credits":5} {"credits":6}`,
	"trailing garbage":           `{"credits":5}x`,
	"empty body":                 ``,
	"whitespace only":            "  \n",
	"bare number":                `5`,
	"bare string":                `"5"`,
	"array body":                 `[{"credits":5}]`,
	"null body":                  `null`,
	"form encoded":               `credits=5`,
	"invalid UTF-8 around value": "{\"credits\":5,\"x\":\"\xff\"}x",
}

func TestParseCreditsRejects(t *testing.T) {
	for name, body := range invalidBodies {
		if got, err := ParseCredits([]byte(body)); err == nil {
			t.Errorf("%s: ParseCredits(%q) = %d, want an error", name, body, got)
		}
	}
}

func FuzzParseCredits(f *testing.F) {
	for _, body := range invalidBodies {
		f.Add([]byte(body))
	}
	for _, body := range []string{`{"credits":0}`, `{"credits":10.0}`, `{"credits":1e1}`, `{"credits":9007199254740991}`} {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := ParseCredits(body)
		if err != nil {
			return
		}
		if n < 0 || n > MaxCredits {
			t.Fatalf("ParseCredits(%q) accepted out-of-range %d", body, n)
		}
		// An accepted value survives a round trip through the canonical form.
		again, err := ParseCredits([]byte(fmt.Sprintf(`{"credits":%d}`, n)))
		if err != nil || again != n {
			t.Fatalf("round trip of %d: %d, %v", n, again, err)
		}
	})
}
