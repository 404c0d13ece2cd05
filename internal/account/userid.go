package account

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxUserIDBytes is the CRD's limit on spec.userID.
const MaxUserIDBytes = 255

// UserID is a user ID that passed ValidUserID. It is parsed once, where it enters (a
// request's token or query, a Checkout Session), and trusted from then on: the store takes
// only UserIDs, so nothing below the edge checks it again.
type UserID string

// ParseUserID returns id as a UserID, or ErrInvalidUserID.
func ParseUserID(id string) (UserID, error) {
	if !ValidUserID(id) {
		return "", ErrInvalidUserID
	}
	return UserID(id), nil
}

// ValidUserID reports whether id can name a user: 1–255 bytes of valid UTF-8 without
// control characters, whitespace, invisible format characters (zero-width spaces,
// bidirectional overrides) or U+FFFD. Anything else could be two IDs that look alike, or
// distinct IDs that collapsed onto one when a decoder replaced invalid bytes (or a JSON
// lone surrogate in a token's sub) with U+FFFD.
func ValidUserID(id string) bool {
	if id == "" || len(id) > MaxUserIDBytes || !utf8.ValidString(id) {
		return false
	}
	for _, r := range id {
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.IsSpace(r) || unicode.Is(unicode.Cf, r) {
			return false
		}
	}
	return true
}

const (
	// namePrefixMax keeps names readable and within the 63-character DNS label limit:
	// prefix (≤ 40) + "-" + hash (16) ≤ 57.
	namePrefixMax = 40
	// nameHashHex is 64 bits of SHA-256: collisions are out of reach for any realistic user count.
	nameHashHex = 16
)

// ObjectNameForUser maps a Clerk user ID to the metadata.name of the UserCredits object the
// API creates for it. The name is deterministic, a valid DNS-1123 label, and injective in
// practice: the readable prefix is lower-cased (Clerk IDs are case-sensitive), so the suffix
// hashes the exact ID to keep IDs that differ only in case apart.
func ObjectNameForUser(userID string) string {
	sum := sha256.Sum256([]byte(userID))
	suffix := hex.EncodeToString(sum[:])[:nameHashHex]

	var b strings.Builder
	lastDash := true // no leading dash, no repeated dashes
	for _, r := range strings.ToLower(userID) {
		if b.Len() >= namePrefixMax {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
			lastDash = false
		case !lastDash:
			b.WriteByte('-')
			lastDash = true
		}
	}
	prefix := strings.TrimRight(b.String(), "-")
	if prefix == "" {
		return "uc-" + suffix
	}
	return prefix + "-" + suffix
}
