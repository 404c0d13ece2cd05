package migrate

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Progress shows an import's writes as they go: on a terminal, one line redrawn in place
// (a bar, the count, the rate and the time left); written to a file or a pipe (a log, CI),
// a line every LogEvery. It is an Observer.
type Progress struct {
	w        io.Writer
	terminal bool
	// LogEvery is how often a line is written when not on a terminal.
	LogEvery time.Duration
	now      func() time.Time

	mu            sync.Mutex
	writes, done  int
	failed        int
	started, last time.Time
}

// NewProgress shows progress on w; terminal says whether w is one.
func NewProgress(w io.Writer, terminal bool) *Progress {
	return &Progress{w: w, terminal: terminal, LogEvery: 10 * time.Second, now: time.Now}
}

// redrawEvery bounds how often the terminal line is redrawn.
const redrawEvery = 100 * time.Millisecond

// Planned starts the count.
func (p *Progress) Planned(rows, writes int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.writes, p.started, p.last = writes, p.now(), p.now()
	if !p.terminal && writes > 0 {
		fmt.Fprintf(p.w, "%d of %d rows to write\n", writes, rows)
	}
}

// Done counts one write.
func (p *Progress) Done(o Outcome) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	if o.Err != nil {
		p.failed++
	}
	now := p.now()
	every := p.LogEvery
	if p.terminal {
		every = redrawEvery
	}
	if now.Sub(p.last) < every && p.done < p.writes {
		return
	}
	p.last = now
	if p.terminal {
		fmt.Fprintf(p.w, "\r%s\x1b[K", p.line(now))
		if p.done == p.writes {
			fmt.Fprintln(p.w)
		}
		return
	}
	fmt.Fprintln(p.w, p.line(now))
}

// Finish ends the terminal line of an interrupted run.
func (p *Progress) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.terminal && p.writes > 0 && p.done < p.writes {
		fmt.Fprintf(p.w, "\r%s\x1b[K\n", p.line(p.now()))
	}
}

const barWidth = 30

// line is the progress at now: `[=========>          ]  31000/99980  31%  1033/s  ETA 1m7s`.
func (p *Progress) line(now time.Time) string {
	elapsed := now.Sub(p.started)
	frac := 1.0
	if p.writes > 0 {
		frac = float64(p.done) / float64(p.writes)
	}
	var b strings.Builder
	if p.terminal {
		filled := int(frac * barWidth)
		b.WriteString("[" + strings.Repeat("=", filled))
		if filled < barWidth {
			b.WriteString(">" + strings.Repeat(" ", barWidth-filled-1))
		}
		b.WriteString("]  ")
	}
	width := len(fmt.Sprint(p.writes))
	fmt.Fprintf(&b, "%*d/%d  %3.0f%%", width, p.done, p.writes, 100*frac)
	rate := 0.0
	if elapsed > 0 {
		rate = float64(p.done) / elapsed.Seconds()
	}
	fmt.Fprintf(&b, "  %.0f/s", rate)
	switch left := p.writes - p.done; {
	case left == 0:
		fmt.Fprintf(&b, "  done in %v", elapsed.Round(time.Second))
	case rate > 0:
		fmt.Fprintf(&b, "  ETA %v", time.Duration(float64(left)/rate*float64(time.Second)).Round(time.Second))
	}
	if p.failed > 0 {
		fmt.Fprintf(&b, "  %d failed", p.failed)
	}
	return b.String()
}
