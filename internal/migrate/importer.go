package migrate

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
)

// FieldManager names the import's writes in metadata.managedFields.
const FieldManager = "kubectl-credits"

// Importer writes the rows of a checked file (Parse) into one namespace, each at most
// once: every object it writes records the row (account.ImportedAnnotation) in the same
// request, so a second run, or a run after one that was killed, finds what was written
// and writes only the rest. Nothing of a row is ever half-written: each is one create or
// one patch.
type Importer struct {
	// Client writes through a rate-limited rest.Config (--qps, --burst): the apiserver
	// serves the live API meanwhile.
	Client    client.Client
	Namespace string
	// Overwrite lets a row change a user who already has another balance.
	Overwrite bool
	// DryRun decides every row and writes nothing.
	DryRun bool
	// Concurrency is how many writes are in flight at once.
	Concurrency int
	// PageSize is the size of the LIST's pages (DefaultPageSize when 0).
	PageSize int64
	// Observer, when set, hears of the plan and of each row's outcome.
	Observer Observer
	Log      logr.Logger
}

// Observer hears how an import goes (a progress bar).
type Observer interface {
	// Planned says how many rows there are, and how many of them need a write.
	Planned(rows, writes int)
	// Done says what became of one row that needed a write.
	Done(o Outcome)
}

// Outcome is what became of one row.
type Outcome struct {
	Row    Row
	Action Action
	// Object names the user's object, when the user had one; Was is its available balance
	// before.
	Object string
	Was    int64
	// Err, when set, says why the row's write failed: the row is not written.
	Err error
}

// Result is what an import did.
type Result struct {
	// Counts holds how many rows came to each Action (failed ones not included).
	Counts map[Action]int
	// Outcomes a person must hear of one by one: writes that failed, users that differ or
	// are contested, and users overwritten.
	Failed, Differing, Contested, Overwritten []Outcome
	// Listed is how many objects the namespace held, at ResourceVersion.
	Listed          int
	ResourceVersion string
	// NotDone counts the rows left unwritten when the run was interrupted (a write cut off
	// in flight among them: it may have been applied, which a re-run finds out).
	NotDone int
	DryRun  bool
	Elapsed time.Duration
}

// Writes counts the rows whose balance the run wrote (or, in a dry run, would write); the
// unchanged ones it marked are not among them.
func (r Result) Writes() int { return r.Counts[Create] + r.Counts[Overwrite] }

// Run imports rows. It returns an error only when it could not start (the LIST failed);
// each row's own failure is in Result.Failed, and an interrupted run (ctx done) counts
// what it left in Result.NotDone.
func (im *Importer) Run(ctx context.Context, rows []Row) (Result, error) {
	started := time.Now()
	res := Result{Counts: map[Action]int{}, DryRun: im.DryRun}
	existing, err := im.list(ctx, &res)
	if err != nil {
		return res, err
	}
	var writes []Outcome
	for _, r := range rows {
		var ex *Existing
		if e, ok := existing[r.UserID]; ok {
			ex = e
		}
		o := Outcome{Row: r, Action: Decide(r, ex, im.Overwrite)}
		if ex != nil {
			o.Object, o.Was = ex.Name, ex.Credits
		}
		if (o.Action == Create || o.Action == Overwrite || o.Action == Unchanged) && !im.DryRun {
			writes = append(writes, o)
			continue
		}
		res.add(o)
	}
	if im.Observer != nil {
		im.Observer.Planned(len(rows), len(writes))
	}
	im.Log.V(1).Info("planned", "rows", len(rows), "writes", len(writes), "objects", res.Listed, "resourceVersion", res.ResourceVersion)
	for o := range im.writeAll(ctx, writes) {
		if o.Err != nil && ctx.Err() != nil && errors.Is(o.Err, ctx.Err()) {
			res.NotDone++ // never sent, or cut off in flight: a re-run finds out which
			continue
		}
		res.add(o)
		if im.Observer != nil {
			im.Observer.Done(o)
		}
	}
	res.Elapsed = time.Since(started)
	return res, nil
}

// list reads every user of the namespace from one LIST.
func (im *Importer) list(ctx context.Context, res *Result) (map[account.UserID]*Existing, error) {
	var existing map[account.UserID]*Existing
	s := snapshot{reader: im.Client, namespace: im.Namespace, pageSize: im.PageSize}
	rv, err := s.each(ctx, func() { existing, res.Listed = map[account.UserID]*Existing{}, 0 }, func(obj *creditsv1alpha1.UserCredits) error {
		res.Listed++
		user := account.UserID(obj.Spec.UserID)
		if ex, ok := existing[user]; ok {
			ex.Objects++
			return nil
		}
		ex := ExistingOf(obj)
		existing[user] = &ex
		return nil
	})
	res.ResourceVersion = rv
	return existing, err
}

// add counts o in r.
func (r *Result) add(o Outcome) {
	switch {
	case o.Err != nil:
		r.Failed = append(r.Failed, o)
		return
	case o.Action == Differs:
		r.Differing = append(r.Differing, o)
	case o.Action == Contested:
		r.Contested = append(r.Contested, o)
	case o.Action == Overwrite:
		r.Overwritten = append(r.Overwritten, o)
	}
	r.Counts[o.Action]++
}

// writeAll writes the planned rows with im.Concurrency writers and sends each outcome.
// Once ctx is done, the rows not yet taken are sent back with ctx's error.
func (im *Importer) writeAll(ctx context.Context, planned []Outcome) <-chan Outcome {
	out := make(chan Outcome, 256)
	work := make(chan Outcome)
	n := max(1, im.Concurrency)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range work {
				if ctx.Err() != nil {
					o.Err = ctx.Err()
					out <- o
					continue
				}
				out <- im.write(ctx, o)
			}
		}()
	}
	go func() {
		for _, o := range planned {
			work <- o
		}
		close(work)
		wg.Wait()
		close(out)
	}()
	return out
}
