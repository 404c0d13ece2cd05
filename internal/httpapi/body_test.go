package httpapi

import (
	"fmt"
	"testing"

	"github.com/gitread/usercredits-operator/test/framework"
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

func TestParseCreditsRejects(t *testing.T) {
	for name, body := range framework.InvalidCreditsBodies {
		if got, err := ParseCredits([]byte(body)); err == nil {
			t.Errorf("%s: ParseCredits(%q) = %d, want an error", name, body, got)
		}
	}
}

func FuzzParseCredits(f *testing.F) {
	for _, body := range framework.InvalidCreditsBodies {
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

// TestHoldBodiesRefuseMembersTheyDoNotName: every member of a hold's body has a default, so
// a misspelt one must be refused, not read as absent (a whole-hold capture).
func TestHoldBodiesRefuseMembersTheyDoNotName(t *testing.T) {
	for body, ok := range map[string]bool{
		`{}`:                                 true,
		`{"credits":1}`:                      true,
		`{"credits":1,"ttlSeconds":60}`:      true,
		`{"credit":1}`:                       false,
		`{"Credits":5,"ttlSeconds":60}`:      false,
		`{"credits":1,"note":"x"}`:           false,
		`{"credits":1,"ttlSeconds":60,"":0}`: false,
	} {
		_, err := parseOnlyFields([]byte(body), fieldCredits, fieldTTLSeconds)
		if (err == nil) != ok {
			t.Errorf("parseOnlyFields(%s): %v, want accepted=%v", body, err, ok)
		}
	}
}
