package account

// Limits and identifiers every part of an account shares.

// MaxBalance is the largest balance: 2^53-1, the largest integer a JavaScript client
// holds exactly. The available credits and the held ones together never exceed it, so
// that every hold can always be returned.
const MaxBalance = 1<<53 - 1

// ValidHoldID accepts 1–64 letters, digits, '_' and '-'.
func ValidHoldID(id string) bool {
	return id != "" && len(id) <= 64 && idChars(id)
}

// ValidLotID accepts what ValidHoldID does.
func ValidLotID(id string) bool { return ValidHoldID(id) }

// ValidReference accepts 1–255 letters, digits, '_' and '-' (every Stripe object ID): it
// never holds the history's separators, ',' and ';'.
func ValidReference(ref string) bool {
	return ref != "" && len(ref) <= maxReferenceLength && idChars(ref)
}

// idChars reports whether s holds only letters, digits, '_' and '-'.
func idChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
