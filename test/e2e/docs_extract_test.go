package e2e

// The docs test's reader: the fenced code blocks of README.md and docs/*.md, the
// `<!-- docs-test: ... -->` annotation before each, a shell block's steps, and the output
// the doc shows for a step.
//
// Conventions a doc follows (TestDocs fails otherwise):
//   - Every fence names its language. sh, bash, shell and console blocks are shell blocks; go
//     blocks are compiled; text, yaml, json and js blocks are not run.
//   - A shell block is preceded (blank lines aside) by an annotation that either runs it,
//     `<!-- docs-test: env=make-run -->`, or skips it with the reason,
//     `<!-- docs-test: skip — needs the Stripe CLI and Stripe's servers -->`. A run
//     annotation may also name preconditions (`given=installed`) and skip single commands
//     with their reasons, one per line: `skip-line "make image" — takes minutes`.
//   - A step is a command line (with its `\` continuation lines). Comment lines directly
//     below a step, with no blank line between, are the output the doc shows for it: the
//     test compares them with what the step printed. A comment after a blank line, or at the
//     end of a command line, is prose.
//   - In shown output, `…` stands for anything, a hold ID (rsv_ and 16 hex digits) for any
//     hold ID, a lot ID (lot_ and 16 hex digits) for any lot ID, and a UTC timestamp for any
//     timestamp; everything else is compared byte for byte. Output whose first line is an
//     upper-case header is a table: compared cell by cell, with the AGE, UPDATED and LAST
//     SEEN columns' durations taken as any duration, and the placeholders in a cell as above.

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// docFile is one Markdown file and its fenced code blocks.
type docFile struct {
	path   string // relative to the repository root
	blocks []docBlock
}

// docBlock is one fenced code block and its annotation.
type docBlock struct {
	doc      string
	line     int // the opening fence's line
	lang     string
	bodyLine int // the first line inside the fence
	body     string

	annotated bool
	skip      string // the reason, when the block is not run
	env       string
	given     []string
	skipLines []lineSkip
}

// lineSkip is a command of a run block that is not run: the first step containing pattern.
type lineSkip struct{ pattern, reason string }

// docStep is a command of a shell block and the output the doc shows for it (nil: none).
type docStep struct {
	line    int
	command string
	output  []string
}

var (
	fenceRE      = regexp.MustCompile("^( *)```(.*)$")
	skipLineRE   = regexp.MustCompile(`^skip-line\s+"([^"]+)"\s*(?:—|:|-)\s*(.+)$`)
	shellLangs   = []string{"sh", "bash", "shell", "console"}
	knownEnvs    = []string{"make-run", "cluster", "fresh-cluster"}
	notRunLangs  = []string{"text", "yaml", "json", "js"}
	docsTestMark = "docs-test:"
)

func isShell(lang string) bool { return slices.Contains(shellLangs, lang) }

// readDocs reads README.md and docs/*.md under root; problems are what breaks the conventions.
func readDocs(root string) (docs []docFile, problems []string) {
	paths, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		return nil, []string{err.Error()}
	}
	sort.Strings(paths)
	paths = append([]string{filepath.Join(root, "README.md")}, paths...)
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		rel, _ := filepath.Rel(root, p)
		blocks, probs := parseDoc(rel, string(data))
		docs = append(docs, docFile{path: rel, blocks: blocks})
		problems = append(problems, probs...)
	}
	return docs, problems
}

// parseDoc finds the fenced blocks of one Markdown text and checks their annotations.
func parseDoc(name, text string) (blocks []docBlock, problems []string) {
	lines := strings.Split(text, "\n")
	var pending *docBlock // an annotation waiting for its block
	pendingLine := 0
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "<!--") && strings.Contains(trimmed, docsTestMark) {
			start := i
			comment := trimmed
			for !strings.Contains(comment, "-->") && i+1 < len(lines) {
				i++
				comment += "\n" + strings.TrimSpace(lines[i])
			}
			b, err := parseAnnotation(comment)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s:%d: %v", name, start+1, err))
			}
			pending, pendingLine = &b, start+1
			continue
		}
		m := fenceRE.FindStringSubmatch(line)
		if m == nil {
			if trimmed != "" && pending != nil {
				problems = append(problems, fmt.Sprintf("%s:%d: docs-test annotation not followed by a code block", name, pendingLine))
				pending = nil
			}
			continue
		}
		indent := len(m[1])
		b := docBlock{}
		if pending != nil {
			b = *pending
		}
		pending = nil
		b.doc, b.line, b.bodyLine = name, i+1, i+2
		if fields := strings.Fields(m[2]); len(fields) > 0 {
			b.lang = fields[0]
		}
		var body []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			l := lines[i]
			if len(l) >= indent && strings.TrimSpace(l[:indent]) == "" {
				l = l[indent:]
			}
			body = append(body, l)
		}
		b.body = strings.Join(body, "\n")
		problems = append(problems, checkBlock(b)...)
		blocks = append(blocks, b)
	}
	return blocks, problems
}

// parseAnnotation reads `<!-- docs-test: ... -->`.
func parseAnnotation(comment string) (docBlock, error) {
	b := docBlock{annotated: true}
	body := comment[strings.Index(comment, docsTestMark)+len(docsTestMark):]
	body = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(body), "-->"))
	if rest, ok := strings.CutPrefix(body, "skip"); ok && !strings.HasPrefix(rest, "-line") {
		b.skip = strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(rest), "—:-"))
		if b.skip == "" {
			return b, fmt.Errorf("a skip needs its reason: <!-- docs-test: skip — why it cannot run here -->")
		}
		return b, nil
	}
	for _, line := range strings.Split(body, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "skip-line") {
			m := skipLineRE.FindStringSubmatch(line)
			if m == nil {
				return b, fmt.Errorf(`malformed %q: want skip-line "part of the command" — reason`, line)
			}
			b.skipLines = append(b.skipLines, lineSkip{pattern: m[1], reason: m[2]})
			continue
		}
		for _, f := range strings.Fields(line) {
			key, value, _ := strings.Cut(f, "=")
			switch key {
			case "env":
				b.env = value
			case "given":
				b.given = append(b.given, strings.Split(value, ",")...)
			default:
				return b, fmt.Errorf("unknown docs-test directive %q (want env=, given=, skip-line or skip)", f)
			}
		}
	}
	return b, nil
}

func checkBlock(b docBlock) []string {
	at := fmt.Sprintf("%s:%d", b.doc, b.line)
	switch {
	case b.lang == "":
		return []string{at + ": a fence without a language: name it (sh for commands, text for output or diagrams)"}
	case isShell(b.lang) && !b.annotated:
		return []string{at + ": a shell block without a docs-test annotation: run it (<!-- docs-test: env=make-run -->) or skip it with the reason (<!-- docs-test: skip — reason -->)"}
	case isShell(b.lang) && b.skip == "" && !slices.Contains(knownEnvs, b.env):
		return []string{fmt.Sprintf("%s: env=%q is none of %v", at, b.env, knownEnvs)}
	case b.annotated && !isShell(b.lang) && (b.lang != "go" || b.skip == ""):
		return []string{fmt.Sprintf("%s: a docs-test annotation on a %s block: only shell blocks run (and go blocks may be skipped)", at, b.lang)}
	case !isShell(b.lang) && b.lang != "go" && !slices.Contains(notRunLangs, b.lang):
		return []string{fmt.Sprintf("%s: unknown block language %q (known: %v, go, %v)", at, b.lang, shellLangs, notRunLangs)}
	}
	return nil
}

// steps splits a shell block into its commands and the output shown below each.
func (b docBlock) steps() []docStep {
	lines := strings.Split(b.body, "\n")
	var steps []docStep
	collecting := false // the previous line was a command or its output
	for i := 0; i < len(lines); i++ {
		trimmed := strings.TrimSpace(lines[i])
		switch {
		case trimmed == "":
			collecting = false
		case strings.HasPrefix(trimmed, "#"):
			if collecting {
				s := &steps[len(steps)-1]
				s.output = append(s.output, strings.TrimPrefix(strings.TrimPrefix(trimmed, "#"), " "))
			}
		default:
			s := docStep{line: b.bodyLine + i, command: lines[i]}
			for strings.HasSuffix(strings.TrimRight(lines[i], " "), `\`) && i+1 < len(lines) {
				i++
				s.command += "\n" + lines[i]
			}
			steps = append(steps, s)
			collecting = true
		}
	}
	return steps
}

var (
	placeholderRE = regexp.MustCompile(`…|(?:rsv|lot)_[0-9a-f]{16}|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`)
	durationRE    = regexp.MustCompile(`^(\d+[smhdy])+$`)
	durationCols  = []string{"AGE", "UPDATED", "LAST SEEN"}
)

// matchOutput compares what a step printed with the output its doc shows.
func matchOutput(want []string, got string) error {
	gotLines := strings.Split(strings.TrimRight(got, "\n"), "\n")
	if isTableHeader(want[0]) {
		return matchTable(want, gotLines)
	}
	if len(gotLines) != len(want) {
		return fmt.Errorf("%d lines printed, the doc shows %d", len(gotLines), len(want))
	}
	for i, w := range want {
		if !linePattern(w).MatchString(gotLines[i]) {
			return fmt.Errorf("line %d: printed %q, the doc shows %q", i+1, gotLines[i], w)
		}
	}
	return nil
}

// linePattern is a shown output line as a regular expression: placeholders match any value
// of their kind, everything else itself.
func linePattern(want string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	last := 0
	for _, loc := range placeholderRE.FindAllStringIndex(want, -1) {
		b.WriteString(regexp.QuoteMeta(want[last:loc[0]]))
		switch p := want[loc[0]:loc[1]]; {
		case p == "…":
			b.WriteString(".*?")
		case strings.HasPrefix(p, "rsv_"), strings.HasPrefix(p, "lot_"):
			b.WriteString(p[:4] + `[0-9a-f]{16}`)
		default:
			b.WriteString(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`)
		}
		last = loc[1]
	}
	b.WriteString(regexp.QuoteMeta(want[last:]) + "$")
	return regexp.MustCompile(b.String())
}

func isTableHeader(line string) bool {
	return len(strings.Fields(line)) > 1 && line == strings.ToUpper(line) && line[0] >= 'A' && line[0] <= 'Z'
}

// matchTable compares two kubectl tables cell by cell, each cut at its own header's columns.
func matchTable(want, got []string) error {
	wantHeader, wantRows := tableCells(want)
	gotHeader, gotRows := tableCells(got)
	if !slices.Equal(wantHeader, gotHeader) {
		return fmt.Errorf("columns %v, the doc shows %v", gotHeader, wantHeader)
	}
	if len(gotRows) != len(wantRows) {
		return fmt.Errorf("%d rows printed, the doc shows %d", len(gotRows), len(wantRows))
	}
	for r := range wantRows {
		for c, name := range wantHeader {
			w, g := wantRows[r][c], gotRows[r][c]
			if slices.Contains(durationCols, name) && durationRE.MatchString(w) && durationRE.MatchString(g) {
				continue
			}
			if w != g && !linePattern(w).MatchString(g) {
				return fmt.Errorf("row %d, %s: printed %q, the doc shows %q", r+1, name, g, w)
			}
		}
	}
	return nil
}

// tableCells cuts a table at its header's column starts (a column name follows two spaces;
// a single space stays inside a name, as in LAST SEEN).
func tableCells(lines []string) (header []string, rows [][]string) {
	var starts []int
	h := lines[0]
	for i := range len(h) {
		if h[i] != ' ' && (i == 0 || (i >= 2 && h[i-1] == ' ' && h[i-2] == ' ')) {
			starts = append(starts, i)
		}
	}
	cut := func(line string) []string {
		cells := make([]string, len(starts))
		for c, s := range starts {
			end := len(line)
			if c+1 < len(starts) {
				end = min(starts[c+1], len(line))
			}
			if s < end {
				cells[c] = strings.TrimSpace(line[s:end])
			}
		}
		return cells
	}
	header = cut(h)
	for _, l := range lines[1:] {
		rows = append(rows, cut(l))
	}
	return header, rows
}
