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
	seq    int64
	chunks map[int]string
	wrote  uint16 // the chunks decisions wrote, a bit each: a batch may fill one and start the next
	// damaged are the chunks that cannot be read whole, a bit each: over their bound (not
	// held: read as empty), or not the entries their place in the ring holds (held: their
	// readable entries are still served, each in its place). A damaged chunk is never
	// appended to as it is, and never costs another chunk its entries.
	damaged uint16
	// seqDamaged: the count cannot be read, so no chunk can be placed: read as empty.
	seqDamaged bool
}

// lostEntry stands where a chunk rewritten over damage had an entry it could not read:
// the entries after it keep their places (an entry's place in its chunk is its number in
// the count, which is where the reader looks for it).
const lostEntry = "-"

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
// after it when a refund has some: the first of a chunk is written so, whole. The others
// are written against it (relativeEntry), which halves them: "code" and "credits" run
// together, then the balance and the time as differences from the first entry's.
func (h history) with(e historyEntry, balance int64, now time.Time) history {
	k := int((h.seq / historyChunkSize) % historyChunks)
	var text, before string
	pos := int(h.seq % historyChunkSize)
	if pos > 0 {
		before = h.before(k, pos)
	}
	first, _, _ := strings.Cut(before, ";")
	if base, ok := parseEntry(first, nil); pos > 0 && ok {
		text = kindCodes[e.kind] + strconv.FormatInt(e.credits, 10) + "," + strconv.FormatInt(balance-base.Balance, 10) + "," +
			strconv.FormatInt(now.Unix()-base.At.Unix(), 10)
	} else {
		text = kindCodes[e.kind] + "," + strconv.FormatInt(e.credits, 10) + "," + strconv.FormatInt(balance, 10) + "," + strconv.FormatInt(now.Unix(), 10)
	}
	if e.reference != "" || e.unrecoverable > 0 {
		text += "," + e.reference
	}
	if e.unrecoverable > 0 {
		text += "," + strconv.FormatInt(e.unrecoverable, 10)
	}
	if pos > 0 {
		text = before + ";" + text
	}
	chunks := maps.Clone(h.chunks)
	if chunks == nil {
		chunks = map[int]string{}
	}
	chunks[k] = text
	return history{seq: h.seq + 1, chunks: chunks, wrote: h.wrote | 1<<k, damaged: h.damaged &^ (1 << k)}
}

// before is what chunk k holds ahead of place pos, for the entry that goes there: the
// chunk as it is when it reads whole; else (damaged, or gone) its readable entries in
// their places and lostEntry in the others, so that the new entry lands at pos. Appended
// after text that is not pos entries, it would sit where the reader never looks.
func (h *history) before(k, pos int) string {
	text, ok := h.chunks[k]
	if ok && h.damaged&(1<<k) == 0 {
		return text
	}
	var b strings.Builder
	var base *Transaction
	for i := range pos {
		var part string
		part, text, _ = strings.Cut(text, ";")
		t, ok := parseEntry(part, base)
		if !ok {
			part = lostEntry
		}
		if i == 0 && ok {
			base = &t
		}
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(part)
	}
	return b.String()
}

// held is how many entries chunk k holds at the count: those of its latest lap of the
// ring; 0 when the count has not reached it (a chunk stored there anyway is left from an
// earlier count, and never read).
func (h *history) held(k int) int {
	if h.seq <= 0 {
		return 0
	}
	newest := (h.seq - 1) / historyChunkSize // the block of chunkSize entries the newest is in
	back := (newest - int64(k)) % historyChunks
	if back < 0 {
		back += historyChunks
	}
	block := newest - back // the latest block chunk k holds
	if block < 0 {
		return 0
	}
	return int(min(historyChunkSize, h.seq-block*historyChunkSize))
}

// chunkReads reports whether text is what a chunk holding held entries stores: that many
// entries (or lostEntry), separated by ";". It allocates nothing: the informer cache's
// form judges every chunk of every object as the informer lists them (CacheForm).
func chunkReads(text string, held int) bool {
	var base *Transaction
	for n := 1; ; n++ {
		part, rest, more := strings.Cut(text, ";")
		if n > held {
			return false
		}
		t, ok := parseEntry(part, base)
		if !ok && part != lostEntry {
			return false
		}
		if n == 1 && ok {
			base = &t
		}
		if !more {
			return n == held
		}
		text = rest
	}
}

// filling is the chunk the next entry goes into when it holds entries already, or -1.
func (h *history) filling() int {
	if h.seq%historyChunkSize == 0 {
		return -1
	}
	return int((h.seq / historyChunkSize) % historyChunks)
}

// entries are the last HistoryLength entries, newest first; entries that cannot be read
// are left out, and so is what a chunk holds past the entries its place in the ring has
// (a damaged chunk's extra text is no entry of this lap). An entry written against the
// first of its chunk reads only when that one does.
func (h *history) entries() []Transaction {
	out := make([]Transaction, 0, min(h.seq, HistoryLength))
	type chunk struct {
		parts []string
		base  *Transaction
	}
	parsed := map[int]chunk{}
	for i := h.seq - 1; i >= 0 && i >= h.seq-ringSize && len(out) < HistoryLength; i-- {
		k := int((i / historyChunkSize) % historyChunks)
		c, ok := parsed[k]
		if !ok {
			c.parts = strings.Split(h.chunks[k], ";")
			c.parts = c.parts[:min(len(c.parts), h.held(k))]
			if len(c.parts) > 0 {
				if t, ok := parseEntry(c.parts[0], nil); ok {
					c.base = &t
				}
			}
			parsed[k] = c
		}
		if pos := int(i % historyChunkSize); pos < len(c.parts) {
			if t, ok := parseEntry(c.parts[pos], c.base); ok {
				out = append(out, t)
			}
		}
	}
	return out
}

// parseEntry reads one entry: four fields, five with a reference, six with a refund's
// unrecoverable credits; written whole, or against base, the first entry of its chunk
// (relative: the code and the credits run together, the balance and the time are
// differences from base's). A relative entry without a base does not read; nor does a
// relative first entry (base is nil for it). It allocates nothing (chunkReads).
func parseEntry(text string, base *Transaction) (Transaction, bool) {
	first, text, ok1 := strings.Cut(text, ",")
	relative := len(first) > 1
	code, credits := first, ""
	if relative {
		if base == nil {
			return Transaction{}, false
		}
		code, credits = first[:1], first[1:]
	} else {
		var ok bool
		if credits, text, ok = strings.Cut(text, ","); !ok {
			return Transaction{}, false
		}
	}
	balance, text, ok3 := strings.Cut(text, ",")
	at, text, hasReference := strings.Cut(text, ",")
	reference, unrecoverable, hasUnrecoverable := strings.Cut(text, ",")
	if !ok1 || !ok3 || strings.Contains(unrecoverable, ",") {
		return Transaction{}, false
	}
	kind, ok := codeKinds[code]
	n, err1 := strconv.ParseInt(credits, 10, 64)
	after, err2 := strconv.ParseInt(balance, 10, 64)
	unix, err3 := strconv.ParseInt(at, 10, 64)
	if !ok || err1 != nil || err2 != nil || err3 != nil {
		return Transaction{}, false
	}
	if relative {
		after, unix = base.Balance+after, base.At.Unix()+unix
	}
	t := Transaction{Kind: kind, Credits: n, Balance: after, At: time.Unix(unix, 0).UTC()}
	if hasReference {
		t.Reference = reference
	}
	if hasUnrecoverable {
		n, err := strconv.ParseInt(unrecoverable, 10, 64)
		if err != nil || n < 0 {
			return Transaction{}, false
		}
		t.Unrecoverable = n
	}
	return t, true
}
