package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/go-logr/logr"
	"golang.org/x/term"

	"github.com/gitread/usercredits-operator/internal/migrate"
)

// runImport imports the file at path ("-": stdin). Everything of the file is read and
// checked before anything is written: a file that cannot be read as a whole writes
// nothing; bad rows are listed and skipped.
func runImport(ctx context.Context, o options, path string, stdin io.Reader, stdout, stderr io.Writer, log logr.Logger) int {
	format, err := migrate.ParseFormat(o.format)
	if err != nil {
		fmt.Fprintln(stderr, "kubectl credits import:", err)
		return exitUsage
	}
	source, data, err := readInput(path, stdin)
	if err != nil {
		fmt.Fprintln(stderr, "kubectl credits import:", err)
		return exitFailed
	}
	if format == "" {
		format = migrate.DetectFormat(path, data)
	}
	file, err := migrate.Parse(data, format)
	if err != nil {
		fmt.Fprintf(stderr, "kubectl credits import: %s: %v: nothing was written\n", source, err)
		return exitFailed
	}
	migrate.WriteBadRows(stderr, source, file.Bad)
	c, namespace, err := connect(o, log)
	if err != nil {
		fmt.Fprintln(stderr, "kubectl credits import:", err)
		return exitFailed
	}
	im := &migrate.Importer{Client: c, Namespace: namespace, Overwrite: o.overwrite, DryRun: o.dryRun, Concurrency: o.concurrency,
		PageSize: o.pageSize, Log: log}
	var progress *migrate.Progress
	if o.progress && !o.dryRun {
		progress = migrate.NewProgress(stderr, isTerminal(stderr))
		im.Observer = progress
	}
	res, err := im.Run(ctx, file.Rows)
	if progress != nil {
		progress.Finish()
	}
	if err != nil {
		fmt.Fprintf(stderr, "kubectl credits import: %v: nothing was written\n", err)
		return exitFailed
	}
	res.WriteRows(stderr, source)
	res.WriteSummary(stdout, source, namespace, file)
	if len(res.Failed) > 0 || res.NotDone > 0 {
		return exitFailed
	}
	return exitOK
}

// readInput reads the file at path, or stdin for "-", and names it for messages.
func readInput(path string, stdin io.Reader) (string, []byte, error) {
	if path == "-" {
		data, err := io.ReadAll(stdin)
		return "<stdin>", data, err
	}
	data, err := os.ReadFile(path)
	return path, data, err
}

// runExport writes the namespace's users to o.output, whole or not at all.
func runExport(ctx context.Context, o options, stdout, stderr io.Writer) int {
	format, err := migrate.ParseFormat(o.format)
	if err != nil {
		fmt.Fprintln(stderr, "kubectl credits export:", err)
		return exitUsage
	}
	if format == "" {
		format = migrate.CSV
		if o.output != "-" {
			format = migrate.DetectFormat(o.output, nil)
		}
	}
	c, namespace, err := connect(o, logr.Discard())
	if err != nil {
		fmt.Fprintln(stderr, "kubectl credits export:", err)
		return exitFailed
	}
	ex := &migrate.Exporter{Reader: c, Namespace: namespace, PageSize: o.pageSize}
	snap, err := ex.Run(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "kubectl credits export:", err)
		return exitFailed
	}
	var buf bytes.Buffer
	if err := migrate.Write(&buf, format, snap.Rows); err != nil {
		fmt.Fprintln(stderr, "kubectl credits export:", err)
		return exitFailed
	}
	if err := writeOutput(o.output, buf.Bytes(), stdout); err != nil {
		fmt.Fprintln(stderr, "kubectl credits export:", err)
		return exitFailed
	}
	for _, w := range snap.Warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	t := migrate.TotalsOf(snap.Rows)
	fmt.Fprintf(stderr, "exported %d users of namespace %s at resourceVersion %s: %s credits available, %s reserved in %d holds, %d lots\n",
		t.Users, namespace, snap.ResourceVersion, t.Credits, t.Reserved, t.Holds, t.Lots)
	return exitOK
}

// writeOutput writes data to path ("-": stdout). A file is written beside its final name
// and renamed onto it, so that an interrupted export never leaves half a file there.
func writeOutput(path string, data []byte, stdout io.Writer) error {
	if path == "-" {
		_, err := stdout.Write(data)
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// isTerminal reports whether w is a terminal, where the progress bar redraws one line.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
