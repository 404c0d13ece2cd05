package migrate

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// clock is a time a test moves by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestProgressOnATerminal(t *testing.T) {
	var out bytes.Buffer
	c := &clock{t: time.Unix(0, 0)}
	p := NewProgress(&out, true)
	p.now = c.now
	p.Planned(1000, 400)
	for i := range 100 {
		c.t = c.t.Add(10 * time.Millisecond) // 100 writes/s
		o := Outcome{Action: Create}
		if i == 0 {
			o.Err = errors.New("refused")
		}
		p.Done(o)
	}
	last := out.String()[strings.LastIndex(out.String(), "\r")+1:]
	want := "[=======>                      ]  100/400   25%  100/s  ETA 3s  1 failed\x1b[K"
	if last != want {
		t.Errorf("line %q\nwant %q", last, want)
	}
	if n := strings.Count(out.String(), "\r"); n != 10 {
		t.Errorf("redrawn %d times in a second, want 10 (every 100 ms)", n)
	}
	p.Finish()
	if !strings.HasSuffix(out.String(), "\n") {
		t.Error("an interrupted run's line is not ended")
	}
}

func TestProgressInALog(t *testing.T) {
	var out bytes.Buffer
	c := &clock{t: time.Unix(0, 0)}
	p := NewProgress(&out, false)
	p.now = c.now
	p.Planned(50, 30)
	for range 30 {
		c.t = c.t.Add(time.Second)
		p.Done(Outcome{Action: Create})
	}
	want := "30 of 50 rows to write\n" +
		"10/30   33%  1/s  ETA 20s\n" +
		"20/30   67%  1/s  ETA 10s\n" +
		"30/30  100%  1/s  done in 30s\n"
	if out.String() != want {
		t.Errorf("log:\n%s\nwant\n%s", out.String(), want)
	}
}

func TestSummary(t *testing.T) {
	file := File{Read: 6, Bad: []BadRow{{Line: 4, Reason: "negative credits \"-1\": a balance is never below zero"}}}
	res := Result{Counts: map[Action]int{Create: 2, AlreadyImported: 1, Differs: 1}, Listed: 3, ResourceVersion: "42", Elapsed: 2 * time.Second,
		Differing: []Outcome{{Row: Row{Line: 6, UserID: "user_d", Credits: 7}, Action: Differs, Was: 5}},
		Failed:    []Outcome{{Row: Row{Line: 7, UserID: "user_f", Credits: 1}, Action: Create, Err: errors.New("forbidden")}}}
	var out bytes.Buffer
	WriteBadRows(&out, "credits.csv", file.Bad)
	res.WriteRows(&out, "credits.csv")
	res.WriteSummary(&out, "credits.csv", "usercredits-system", file)
	want := `credits.csv:4: negative credits "-1": a balance is never below zero: skipped
credits.csv:6: user "user_d" has 7 credits in the file and 5 in the cluster: left alone (--overwrite replaces it)
credits.csv:7: user "user_f": not written: forbidden
credits.csv into namespace usercredits-system (3 objects there at resourceVersion 42)
  rows read                6
  bad rows                 1  skipped, listed above with their lines
  created                  2
  already imported         1  written by an earlier run of this import, left as they are now
  unchanged                0
  differs                  1  left alone: --overwrite replaces them
  overwritten              0
  contested                0
  failed                   1  not written, listed above: run the same command again
2 rows written in 2s (1/s).
`
	if out.String() != want {
		t.Errorf("report:\n%s\nwant\n%s", out.String(), want)
	}

	for _, c := range []struct {
		res  Result
		want string
	}{
		{Result{Counts: map[Action]int{AlreadyImported: 5}}, "Nothing was written: no row needed it."},
		{Result{Counts: map[Action]int{Create: 5}, DryRun: true}, "Dry run: nothing was written (5 rows would be)."},
		{Result{Counts: map[Action]int{Create: 5}, NotDone: 3}, "Interrupted after 5 writes: 3 rows are not written."},
		{Result{Counts: map[Action]int{Create: 1, Unchanged: 2}, Elapsed: time.Second}, "1 rows written, 2 unchanged ones recorded as imported, in 1s (3/s)."},
	} {
		if got := c.res.closing(); !strings.HasPrefix(got, c.want) {
			t.Errorf("closing %q, want %q", got, c.want)
		}
	}
}
