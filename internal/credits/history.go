package credits

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The transaction history lives on the user's object, written in the same update as the
// change it records: a ring of historyChunks annotations of historyChunkSize entries each
// (HistoryChunkAnnotation(k)), and HistorySeqAnnotation, the number of entries ever
// written. Entry i sits in chunk (i/historyChunkSize)%historyChunks; a new chunk replaces
// the oldest, so between 100 and 110 entries are kept. The informer cache keeps only the
// sequence number and the chunk being filled (CacheTransform): enough to append, a few
// hundred bytes per user.
const (
	HistorySeqAnnotation = "credits.gitread.dev/history-seq"
	historyChunkPrefix   = "credits.gitread.dev/history-"
	historyChunkSize     = 10
	historyChunks        = 11
	// HistoryLength is how many entries the history answers at most: the last 100.
	HistoryLength = 100
)

// HistoryChunkAnnotation names history chunk k.
func HistoryChunkAnnotation(k int) string { return historyChunkPrefix + strconv.Itoa(k) }

// Transaction is one entry of a user's history.
type Transaction struct {
	// Kind is the operation, or KindPurchase for a grant paid through Stripe Checkout.
	Kind OpKind
	// Credits is the amount of the operation: for a set, the balance it set (equal to
	// Balance: a set records no difference); otherwise what it moved: the credits consumed,
	// granted, purchased, reserved, captured, released or expired.
	Credits int64
	// Balance is the available balance after it.
	Balance int64
	At      time.Time
	// Reference names what the change came from: a purchase's Checkout Session ID; "" else.
	Reference string
}

// historyEntry is what a decision adds to the history.
type historyEntry struct {
	kind      OpKind
	credits   int64
	reference string
}

// kind codes in the stored entries: one letter each.
var kindCodes = map[OpKind]string{OpSet: "s", OpConsume: "c", OpGrant: "g", OpReserve: "r", OpCapture: "p", OpRelease: "l", OpExpire: "e", KindPurchase: "b"}

// maxReferenceLength bounds a history reference; Stripe's IDs are at most 255 characters.
const maxReferenceLength = 255

// ValidReference accepts 1–255 letters, digits, '_' and '-' (every Stripe object ID): it
// never holds the history's separators, ',' and ';'.
func ValidReference(ref string) bool {
	if ref == "" || len(ref) > maxReferenceLength {
		return false
	}
	for i := 0; i < len(ref); i++ {
		c := ref[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

var codeKinds = func() map[string]OpKind {
	m := map[string]OpKind{}
	for k, c := range kindCodes {
		m[c] = k
	}
	return m
}()

// appendHistory records e, with the balance after it, in the annotations to write. An
// entry is "code,credits,balance,unix seconds", and ",reference" when it has one: entries
// written before references existed read as they always did.
func (d *decision) appendHistory(annotations map[string]string, now time.Time) {
	seq, _ := strconv.Atoi(annotations[HistorySeqAnnotation])
	chunk := HistoryChunkAnnotation((seq / historyChunkSize) % historyChunks)
	text := fmt.Sprintf("%s,%d,%d,%d", kindCodes[d.entry.kind], d.entry.credits, d.credits, now.Unix())
	if d.entry.reference != "" {
		text += "," + d.entry.reference
	}
	if seq%historyChunkSize != 0 && annotations[chunk] != "" {
		text = annotations[chunk] + ";" + text
	}
	d.set(chunk, text)
	d.set(HistorySeqAnnotation, strconv.Itoa(seq+1))
}

// History reads the last HistoryLength entries from an object's annotations, newest first.
func History(annotations map[string]string) []Transaction {
	seq, _ := strconv.Atoi(annotations[HistorySeqAnnotation])
	out := make([]Transaction, 0, min(seq, HistoryLength))
	for first := seq - 1; first >= 0 && len(out) < HistoryLength; {
		chunkStart := first - first%historyChunkSize
		entries := strings.Split(annotations[HistoryChunkAnnotation((first/historyChunkSize)%historyChunks)], ";")
		for i := min(first-chunkStart, len(entries)-1); i >= 0 && len(out) < HistoryLength; i-- {
			if t, ok := parseEntry(entries[i]); ok {
				out = append(out, t)
			}
		}
		first = chunkStart - 1
	}
	return out
}

func parseEntry(text string) (Transaction, bool) {
	f := strings.Split(text, ",")
	if len(f) != 4 && len(f) != 5 {
		return Transaction{}, false
	}
	kind, ok := codeKinds[f[0]]
	credits, err1 := strconv.ParseInt(f[1], 10, 64)
	balance, err2 := strconv.ParseInt(f[2], 10, 64)
	at, err3 := strconv.ParseInt(f[3], 10, 64)
	if !ok || err1 != nil || err2 != nil || err3 != nil {
		return Transaction{}, false
	}
	t := Transaction{Kind: kind, Credits: credits, Balance: balance, At: time.Unix(at, 0).UTC()}
	if len(f) == 5 {
		t.Reference = f[4]
	}
	return t, true
}

// currentChunk is the history chunk the next entry goes into, when it holds entries
// already; "" when the next entry starts a new chunk.
func currentChunk(annotations map[string]string) string {
	seq, _ := strconv.Atoi(annotations[HistorySeqAnnotation])
	if seq%historyChunkSize == 0 {
		return ""
	}
	return HistoryChunkAnnotation((seq / historyChunkSize) % historyChunks)
}

// Transactions returns userID's last HistoryLength changes, newest first. They are read
// from the apiserver, as the cache keeps only what appending needs: one apiserver call.
func (s *Store) Transactions(ctx context.Context, userID string) ([]Transaction, error) {
	if !ValidUserID(userID) {
		return nil, ErrInvalidUserID
	}
	cached, _, err := s.lookup(ctx, userID)
	if err != nil {
		return nil, err
	}
	key := client.ObjectKey{Namespace: s.opts.Namespace, Name: ObjectNameForUser(userID)}
	if cached != nil {
		key = client.ObjectKeyFromObject(cached)
	}
	obj, err := s.read(ctx, key)
	if err != nil || obj == nil {
		return []Transaction{}, err
	}
	if err := s.checkTrusted(obj, userID); err != nil {
		return nil, err
	}
	return History(obj.Annotations), nil
}
