package settings

import (
	"bytes"
	"fmt"
	"strings"
)

// Reference renders every binding as a Markdown page: a table per section, each row a
// flag and the environment variable that sets it, with the default and the usage text.
func (b *Binder) Reference(title, intro string) []byte {
	var out bytes.Buffer
	fmt.Fprintf(&out, "# %s\n\n%s\n", title, strings.TrimSpace(intro))
	section := "\x00"
	for _, bd := range b.bindings {
		if bd.Section != section {
			section = bd.Section
			if section != "" {
				fmt.Fprintf(&out, "\n## %s\n", section)
			}
			out.WriteString("\n| flag | environment | default | meaning |\n| --- | --- | --- | --- |\n")
		}
		fmt.Fprintf(&out, "| %s | %s | %s | %s |\n", code("--", bd.Flag), code("", bd.Env), defaultCell(bd), cell(bd.Usage))
	}
	return out.Bytes()
}

func code(prefix, name string) string {
	if name == "" {
		return ""
	}
	return "`" + prefix + name + "`"
}

func defaultCell(bd *Binding) string {
	switch {
	case bd.Secret:
		return "(unset)"
	case bd.Default == "":
		return "(empty)"
	case strings.ContainsAny(bd.Default, "`$") || strings.Contains(bd.Default, " "):
		return cell(bd.Default)
	}
	return "`" + bd.Default + "`"
}

// cell escapes what would break a Markdown table row.
func cell(text string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(text)
}
