package credits

import (
	"context"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

// Group commit: the operations on one user that arrive while a write for that user is in
// flight are applied together in the next single write. Each is decided in arrival order
// against the running state, so a consume that would overdraw is refused exactly as it
// would be alone, and each gets its own answer; across replicas, the write's
// preconditions (writePatch) stay the arbiter. A hot user's writes therefore cost one
// apiserver round trip per batch instead of one per operation.

// queuedOp is an operation waiting for its user's writer.
type queuedOp struct {
	op       Operation
	deadline time.Time // the request's, or zero
	arrived  time.Time
	state    atomic.Int32
	done     chan outcome // buffered: the writer never blocks on it
}

// States of a queuedOp.
const (
	opQueued int32 = iota
	opTaken
	opCancelled
)

// outcome is one operation's answer.
type outcome struct {
	res Result
	err error
}

// userQueue holds the operations waiting for one user's writer.
type userQueue struct {
	ops     []*queuedOp
	writing bool
}

// queues holds the user queues of a Store.
type queues struct {
	mu    sync.Mutex
	users map[string]*userQueue
}

// answerGrace is how long an operation whose request deadline has passed still waits for
// the write it is part of, so that it answers what happened rather than "unknown".
const answerGrace = time.Second

// enqueue adds op for userID and waits for its outcome. The first operation to find no
// writer for its user starts one.
func (s *Store) enqueue(ctx context.Context, userID string, op Operation) (Result, error) {
	q := &queuedOp{op: op, done: make(chan outcome, 1), arrived: time.Now()}
	q.deadline, _ = ctx.Deadline()
	s.queues.mu.Lock()
	uq := s.queues.users[userID]
	if uq == nil {
		uq = &userQueue{}
		s.queues.users[userID] = uq
	}
	uq.ops = append(uq.ops, q)
	start := !uq.writing
	uq.writing = true
	s.queues.mu.Unlock()
	if start {
		go s.drain(userID, uq)
	}
	select {
	case o := <-q.done:
		return o.res, o.err
	case <-ctx.Done():
	}
	if q.state.CompareAndSwap(opQueued, opCancelled) {
		return Result{}, ctx.Err() // never sent: nothing was applied
	}
	select { // in a write already: wait a little for what came of it
	case o := <-q.done:
		return o.res, o.err
	case <-time.After(answerGrace):
		return Result{}, &unknownOutcomeError{err: ctx.Err()}
	}
}

// drain writes userID's queued operations, a batch at a time, until none are left.
func (s *Store) drain(userID string, uq *userQueue) {
	for {
		s.queues.mu.Lock()
		batch := uq.ops
		uq.ops = nil
		if len(batch) == 0 {
			uq.writing = false
			delete(s.queues.users, userID)
			s.queues.mu.Unlock()
			return
		}
		s.queues.mu.Unlock()
		taken := batch[:0]
		for _, q := range batch {
			if q.state.CompareAndSwap(opQueued, opTaken) {
				taken = append(taken, q)
			}
		}
		if len(taken) > 0 {
			s.applyBatch(userID, taken)
		}
	}
}

// applyBatch decides and writes a batch, resolves a write whose answer was lost, and
// answers every operation.
func (s *Store) applyBatch(userID string, batch []*queuedOp) {
	ops := make([]Operation, len(batch))
	var deadline, arrived time.Time
	for i, q := range batch {
		ops[i] = q.op
		if q.deadline.After(deadline) {
			deadline = q.deadline
		}
		if q.arrived.After(arrived) {
			arrived = q.arrived
		}
	}
	if deadline.IsZero() || time.Until(deadline) > s.opts.WriteTimeout {
		deadline = time.Now().Add(s.opts.WriteTimeout)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	outcomes, err := s.writeBatch(ctx, userID, ops, arrived.Add(refusalSettle))
	cancel()
	if err != nil {
		outcomes = s.resolve(userID, ops, err)
	}
	for i, q := range batch {
		q.done <- outcomes[i]
	}
}

// batchDecision is what a batch of operations comes to on one state.
type batchDecision struct {
	outcomes     []outcome
	credits      int64
	holds        []creditsv1alpha1.Reservation
	holdsChanged bool
	// annotations are the changed annotations; writes counts the operations that change
	// something; refused, those a newer state might have allowed.
	annotations map[string]string
	writes      int
	refused     bool
	// written are the operations that change something, for Events and logs.
	written []Operation
}

// decideBatch decides ops in order, each on the state the ones before it left. It is pure.
func decideBatch(credits int64, holds []creditsv1alpha1.Reservation, annotations map[string]string, ops []Operation, now time.Time, grantKeyRetention time.Duration) batchDecision {
	b := batchDecision{outcomes: make([]outcome, len(ops)), credits: credits, holds: holds}
	running := maps.Clone(annotations)
	if running == nil {
		running = map[string]string{}
	}
	for i, op := range ops {
		d, err := decide(b.credits, b.holds, running, op, now, grantKeyRetention)
		b.outcomes[i] = outcome{res: d.result, err: err}
		if refusal(err) {
			b.refused = true
		}
		if err != nil || d.noop {
			continue
		}
		b.credits = d.credits
		if d.holdsChanged {
			b.holds, b.holdsChanged = d.reservations, true
		}
		for k, v := range d.annotations {
			running[k] = v
			if b.annotations == nil {
				b.annotations = map[string]string{}
			}
			b.annotations[k] = v
		}
		b.writes++
		b.written = append(b.written, op)
	}
	return b
}

// errorOutcomes answers every operation with err.
func errorOutcomes(n int, err error) []outcome {
	out := make([]outcome, n)
	for i := range out {
		out[i].err = err
	}
	return out
}
