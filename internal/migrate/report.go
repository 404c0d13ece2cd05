package migrate

import (
	"fmt"
	"io"
	"strconv"
	"time"
)

// WriteBadRows lists the bad rows of source, one a line, as compilers do: `source:line: reason`.
func WriteBadRows(w io.Writer, source string, bad []BadRow) {
	for _, b := range bad {
		fmt.Fprintf(w, "%s:%d: %s: skipped\n", source, b.Line, b.Reason)
	}
}

// WriteRows lists the rows of source a person must hear of one by one: users left alone
// because they differ or are contested, users overwritten, writes that failed.
func (r Result) WriteRows(w io.Writer, source string) {
	would := ""
	if r.DryRun {
		would = "would be "
	}
	for _, o := range r.Differing {
		fmt.Fprintf(w, "%s:%d: user %s has %d credits in the file and %d in the cluster: left alone (--overwrite replaces it)\n",
			source, o.Row.Line, strconv.Quote(string(o.Row.UserID)), o.Row.Credits, o.Was)
	}
	for _, o := range r.Contested {
		fmt.Fprintf(w, "%s:%d: user %s is claimed by several objects, which the API does not serve: left alone until all but one are removed\n",
			source, o.Row.Line, strconv.Quote(string(o.Row.UserID)))
	}
	for _, o := range r.Overwritten {
		fmt.Fprintf(w, "%s:%d: user %s: %d credits %soverwritten with %d\n", source, o.Row.Line, strconv.Quote(string(o.Row.UserID)), o.Was, would, o.Row.Credits)
	}
	for _, o := range r.Failed {
		fmt.Fprintf(w, "%s:%d: user %s: not written: %v\n", source, o.Row.Line, strconv.Quote(string(o.Row.UserID)), o.Err)
	}
}

// summaryLines are the summary's counts, in order, with what each means.
var summaryLines = []struct {
	action Action
	means  string
}{
	{Create, ""},
	{AlreadyImported, "written by an earlier run of this import, left as they are now"},
	{Unchanged, "the user already had this balance: recorded as imported"},
	{Differs, "left alone: --overwrite replaces them"},
	{Overwrite, ""},
	{Contested, "claimed by several objects: left alone"},
}

// WriteSummary writes what the import of file (read from source) did, for a person.
func (r Result) WriteSummary(w io.Writer, source, namespace string, file File) {
	fmt.Fprintf(w, "%s into namespace %s (%d objects there at resourceVersion %s)\n", source, namespace, r.Listed, r.ResourceVersion)
	row := func(label string, n int, means string) {
		if means != "" && n > 0 {
			fmt.Fprintf(w, "  %-17s %8d  %s\n", label, n, means)
			return
		}
		fmt.Fprintf(w, "  %-17s %8d\n", label, n)
	}
	row("rows read", file.Read, "")
	row("bad rows", len(file.Bad), "skipped, listed above with their lines")
	for _, l := range summaryLines {
		label := string(l.action)
		if r.DryRun && (l.action == Create || l.action == Overwrite) {
			label = "to be " + label
		}
		row(label, r.Counts[l.action], l.means)
	}
	row("failed", len(r.Failed), "not written, listed above: run the same command again")
	if r.NotDone > 0 {
		row("not done", r.NotDone, "interrupted")
	}
	fmt.Fprintln(w, r.closing())
}

// closing is the summary's last line: what to make of it.
func (r Result) closing() string {
	writes := r.Writes()
	switch {
	case r.DryRun:
		return fmt.Sprintf("Dry run: nothing was written (%d rows would be).", writes)
	case r.NotDone > 0:
		return fmt.Sprintf("Interrupted after %d writes: %d rows are not written. Run the same command again to finish: what was written is found, and never written twice.",
			writes, r.NotDone)
	case writes == 0 && r.Counts[Unchanged] == 0 && len(r.Failed) == 0:
		return "Nothing was written: no row needed it."
	}
	marked := r.Counts[Unchanged]
	rate := float64(writes+marked) / max(r.Elapsed.Seconds(), 1e-3)
	text := fmt.Sprintf("%d rows written", writes)
	if marked > 0 {
		text += fmt.Sprintf(", %d unchanged ones recorded as imported,", marked)
	}
	return fmt.Sprintf("%s in %v (%.0f/s).", text, r.Elapsed.Round(100*time.Millisecond), rate)
}
