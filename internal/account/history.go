package account

import (
	"maps"
	"strconv"
	"strings"
	"time"
)

// The history is a ring of historyChunks chunks of historyChunkSize entries each, and a
// count of the entries ever written: entry i sits in chunk (i/historyChunkSize)%historyChunks,
// and a new chunk replaces the oldest, so between 100 and 110 entries are kept. A write
// changes one chunk and the count. Reading it walks back at most the ring's size from the
// count, whatever number is stored there: a hand-edited count costs nothing.
const (
	historyChunkSize = 10
	historyChunks    = 11
	ringSize         = historyChunkSize * historyChunks
	// HistoryLength is how many entries the history answers at most: the last 100.
	HistoryLength = 100
)

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
	// Reference names what the change came from: a purchase's Checkout Session ID (for a
	// purchase, refund, dispute or reinstatement), the lot an expiry or void removed
	// credits from; "" else.
	Reference string
	// Unrecoverable, for a refund, is the credits it should have taken back that had been
	// spent already (Credits is what it took).
	Unrecoverable int64
}

// historyEntry is what a decision adds to the history.
type historyEntry struct {
	kind          OpKind
	credits       int64
	reference     string
	unrecoverable int64
}

// history is the ring as stored: the count, and the chunks this account holds (all of
// them when read whole from the apiserver; the one being filled in the informer cache).
type history struct {
	seq     int64
	chunks  map[int]string
	wrote   uint16 // the chunks decisions wrote, a bit each: a batch may fill one and start the next
	damaged bool
}

// kind codes in the stored entries: one letter each.
var kindCodes = map[OpKind]string{OpSet: "s", OpConsume: "c", OpGrant: "g", OpReserve: "r", OpCapture: "p", OpRelease: "l", OpExpire: "e", KindPurchase: "b", OpVoid: "v",
	OpRefund: "f", OpDispute: "d", KindReinstate: "w"}

var codeKinds = func() map[string]OpKind {
	m := map[string]OpKind{}
	for k, c := range kindCodes {
		m[c] = k
	}
	return m
}()

// with returns the history with e, and the balance after it, appended at now. An entry is
// "code,credits,balance,unix seconds", ",reference" when it has one, and ",unrecoverable"
// after it when a refund has some.
func (h history) with(e historyEntry, balance int64, now time.Time) history {
	k := int((h.seq / historyChunkSize) % historyChunks)
	text := kindCodes[e.kind] + "," + strconv.FormatInt(e.credits, 10) + "," + strconv.FormatInt(balance, 10) + "," + strconv.FormatInt(now.Unix(), 10)
	if e.reference != "" || e.unrecoverable > 0 {
		text += "," + e.reference
	}
	if e.unrecoverable > 0 {
		text += "," + strconv.FormatInt(e.unrecoverable, 10)
	}
	if h.seq%historyChunkSize != 0 && h.chunks[k] != "" {
		text = h.chunks[k] + ";" + text
	}
	chunks := maps.Clone(h.chunks)
	if chunks == nil {
		chunks = map[int]string{}
	}
	chunks[k] = text
	return history{seq: h.seq + 1, chunks: chunks, wrote: h.wrote | 1<<k}
}

// filling is the chunk the next entry goes into when it holds entries already, or -1.
func (h *history) filling() int {
	if h.seq%historyChunkSize == 0 {
		return -1
	}
	return int((h.seq / historyChunkSize) % historyChunks)
}

// entries are the last HistoryLength entries, newest first; entries that cannot be read
// are left out.
func (h *history) entries() []Transaction {
	out := make([]Transaction, 0, min(h.seq, HistoryLength))
	parsed := map[int][]string{}
	for i := h.seq - 1; i >= 0 && i >= h.seq-ringSize && len(out) < HistoryLength; i-- {
		k := int((i / historyChunkSize) % historyChunks)
		parts, ok := parsed[k]
		if !ok {
			parts = strings.Split(h.chunks[k], ";")
			parsed[k] = parts
		}
		if pos := int(i % historyChunkSize); pos < len(parts) {
			if t, ok := parseEntry(parts[pos]); ok {
				out = append(out, t)
			}
		}
	}
	return out
}

func parseEntry(text string) (Transaction, bool) {
	f := strings.Split(text, ",")
	if len(f) < 4 || len(f) > 6 {
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
	if len(f) >= 5 {
		t.Reference = f[4]
	}
	if len(f) == 6 {
		n, err := strconv.ParseInt(f[5], 10, 64)
		if err != nil || n < 0 {
			return Transaction{}, false
		}
		t.Unrecoverable = n
	}
	return t, true
}
