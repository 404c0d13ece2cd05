package credits

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gitread/usercredits-operator/internal/account"
)

// Group commit: the operations on one user that arrive while a write for that user is in
// flight are applied together in the next single write. Each is decided in arrival order
// against the running state, so a consume that would overdraw is refused exactly as it
// would be alone, and each gets its own answer; across replicas, the write's
// preconditions (writePatch) stay the arbiter. A hot user's writes therefore cost one
// apiserver round trip per batch instead of one per operation.

// queuedOp is an operation waiting for its user's writer.
type queuedOp struct {
	op       account.Operation
	deadline time.Time // the request's, or zero
	arrived  time.Time
	state    atomic.Int32
	done     chan account.Answer // buffered: the writer never blocks on it
}

// States of a queuedOp.
const (
	opQueued int32 = iota
	opTaken
	opCancelled
)

// userQueue holds the operations waiting for one user's writer.
type userQueue struct {
	ops     []*queuedOp
	writing bool
}

// batcher runs one writer per user: write is called with each batch of that user's
// operations, in arrival order, and answers each.
type batcher struct {
	mu    sync.Mutex
	users map[account.UserID]*userQueue
	write func(user account.UserID, batch []*queuedOp)
}

// answerGrace is how long an operation whose request deadline has passed still waits for
// the write it is part of, so that it answers what happened rather than "unknown".
const answerGrace = time.Second

// enqueue adds op for user and waits for its answer. The first operation to find no
// writer for its user starts one.
func (b *batcher) enqueue(ctx context.Context, user account.UserID, op account.Operation) (account.Result, error) {
	q := &queuedOp{op: op, done: make(chan account.Answer, 1), arrived: time.Now()}
	q.deadline, _ = ctx.Deadline()
	b.mu.Lock()
	uq := b.users[user]
	if uq == nil {
		uq = &userQueue{}
		b.users[user] = uq
	}
	uq.ops = append(uq.ops, q)
	start := !uq.writing
	uq.writing = true
	b.mu.Unlock()
	if start {
		go b.drain(user, uq)
	}
	select {
	case a := <-q.done:
		return a.Result, a.Err
	case <-ctx.Done():
	}
	if q.state.CompareAndSwap(opQueued, opCancelled) {
		return account.Result{}, ctx.Err() // never sent: nothing was applied
	}
	select { // in a write already: wait a little for what came of it
	case a := <-q.done:
		return a.Result, a.Err
	case <-time.After(answerGrace):
		return account.Result{}, &lostWriteError{err: ctx.Err()}
	}
}

// drain writes user's queued operations, a batch at a time, until none are left.
func (b *batcher) drain(user account.UserID, uq *userQueue) {
	for {
		b.mu.Lock()
		batch := uq.ops
		uq.ops = nil
		if len(batch) == 0 {
			uq.writing = false
			delete(b.users, user)
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		taken := batch[:0]
		for _, q := range batch {
			if q.state.CompareAndSwap(opQueued, opTaken) {
				taken = append(taken, q)
			}
		}
		if len(taken) > 0 {
			b.write(user, taken)
		}
	}
}

// bounds is when a batch must be written by (the latest of its requests' deadlines, at
// most maxWait from now), and when the last of its operations arrived.
func bounds(batch []*queuedOp, maxWait time.Duration) (deadline, arrived time.Time) {
	for _, q := range batch {
		if q.deadline.After(deadline) {
			deadline = q.deadline
		}
		if q.arrived.After(arrived) {
			arrived = q.arrived
		}
	}
	if deadline.IsZero() || time.Until(deadline) > maxWait {
		deadline = time.Now().Add(maxWait)
	}
	return deadline, arrived
}

// errorAnswers answers n operations with err.
func errorAnswers(n int, err error) []account.Answer {
	out := make([]account.Answer, n)
	for i := range out {
		out[i].Err = err
	}
	return out
}
