package auth

import (
	"strings"
	"testing"
)

func TestBearerToken(t *testing.T) {
	cases := map[string]struct {
		header, token string
		ok            bool
	}{
		"bearer":           {"Bearer abc.def.ghi", "abc.def.ghi", true},
		"lower-case":       {"bearer abc.def.ghi", "abc.def.ghi", true},
		"basic":            {"Basic dXNlcjpwYXNz", "", false},
		"empty":            {"", "", false},
		"scheme only":      {"Bearer", "", false},
		"blank token":      {"Bearer    ", "", false},
		"two tokens":       {"Bearer a.b.c d.e.f", "", false},
		"oversized":        {"Bearer " + strings.Repeat("a", maxTokenBytes+1), "", false},
		"trailing space":   {"Bearer a.b.c ", "a.b.c", true},
		"no space, joined": {"Bearera.b.c", "", false},
	}
	for name, c := range cases {
		token, ok := BearerToken(c.header)
		if token != c.token || ok != c.ok {
			t.Errorf("%s: BearerToken(%q) = %q, %v; want %q, %v", name, c.header, token, ok, c.token, c.ok)
		}
	}
}
