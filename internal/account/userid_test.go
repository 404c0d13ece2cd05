package account

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

func TestObjectNameForUserIsValidDNSLabel(t *testing.T) {
	ids := []string{
		"user_2NNEqL2nrIRdJ194ndJqAHwEfxC",
		"a",
		"_",
		"___leading_and_trailing___",
		"UPPER",
		"ünïcödé-ユーザー",
		"user.with.dots@example.com",
		strings.Repeat("x", 255),
		strings.Repeat("_-", 100),
	}
	for _, id := range ids {
		name := ObjectNameForUser(id)
		if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
			t.Errorf("ObjectNameForUser(%q) = %q: not a DNS-1123 label: %v", id, name, errs)
		}
		if again := ObjectNameForUser(id); again != name {
			t.Errorf("ObjectNameForUser(%q) not deterministic: %q then %q", id, name, again)
		}
	}
}

func TestObjectNameForUserKeepsReadablePrefix(t *testing.T) {
	name := ObjectNameForUser("user_2NNEqL2nrIRdJ194ndJqAHwEfxC")
	if !strings.HasPrefix(name, "user-2nneql2nrirdj194ndjqahwefxc-") {
		t.Fatalf("name %q does not start with the lower-cased user ID", name)
	}
}

func TestObjectNameForUserIsInjectiveOnCaseAndPunctuation(t *testing.T) {
	// Each group maps to the same readable prefix; only the hash keeps them apart.
	groups := [][]string{
		{"user_ABC", "user_abc", "User_Abc", "USER_ABC", "user-abc", "user.abc", "user__abc"},
		{"user_2NNEqL2nrIRdJ194ndJqAHwEfxC", "user_2nneql2nrirdj194ndjqahwefxc", "USER_2NNEQL2NRIRDJ194NDJQAHWEFXC"},
		{strings.Repeat("a", 60) + "1", strings.Repeat("a", 60) + "2"}, // differ past the prefix cut
	}
	seen := map[string]string{}
	for _, group := range groups {
		for _, id := range group {
			name := ObjectNameForUser(id)
			if other, dup := seen[name]; dup {
				t.Errorf("IDs %q and %q both map to %q", other, id, name)
			}
			seen[name] = id
		}
	}
}

func TestValidUserID(t *testing.T) {
	valid := []string{"user_2NNEqL2nrIRdJ194ndJqAHwEfxC", "a", "user_é", "ユーザー", strings.Repeat("x", MaxUserIDBytes)}
	invalid := []string{"", "\xff", "user\x00x", "user\nx", "user x", "user\tx", "user\u00a0x", "user\u200bx", "user\u202ex", "user\ufffd",
		"\xed\xa0\x80", strings.Repeat("x", MaxUserIDBytes+1), strings.Repeat("é", 128)}
	for _, id := range valid {
		if !ValidUserID(id) {
			t.Errorf("ValidUserID(%q) = false, want true", id)
		}
	}
	for _, id := range invalid {
		if ValidUserID(id) {
			t.Errorf("ValidUserID(%q) = true, want false", id)
		}
	}
}
