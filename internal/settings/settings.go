// Package settings binds a program's settings to command-line flags and environment
// variables in one place, and renders their reference page. Each setting is one call of a
// Binder method that points at the field the program reads: there is no second copy of a
// setting to keep in step, and the reference (docs/flags.md) is rendered from the same
// bindings, so it cannot drift from what the binary accepts.
package settings

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Binding is one setting: a flag, an environment variable, or a flag an environment
// variable may also set.
type Binding struct {
	// Flag is the flag's name without dashes; "" for a setting only the environment sets.
	Flag string
	// Env is the environment variable that sets it; "" for a flag alone.
	Env string
	// Default is the default as the reference shows it.
	Default string
	// Usage says what the setting does.
	Usage string
	// Secret settings are read from the environment only (a flag would show in ps) and
	// never printed.
	Secret bool
	// Target is the address of the field the setting is bound to.
	Target any
	// Owner, for flags another library registers (Library), names the setting that owns them.
	Owner string
	// Section groups the setting in the reference.
	Section string

	value flag.Value
}

// Binder binds settings to a flag set and to environment variables.
type Binder struct {
	fs       *flag.FlagSet
	bindings []*Binding
	section  string
}

// NewBinder returns a Binder that registers its flags on fs.
func NewBinder(fs *flag.FlagSet) *Binder { return &Binder{fs: fs} }

// Defaults returns a Binder on a flag set of its own: binding to it only sets each field
// to its default, which is how a program gets default settings without writing them twice.
func Defaults() *Binder { return NewBinder(flag.NewFlagSet("defaults", flag.ContinueOnError)) }

// FlagSet is the flag set the Binder registers on.
func (b *Binder) FlagSet() *flag.FlagSet { return b.fs }

// Bindings returns every setting, in the order they were bound.
func (b *Binder) Bindings() []*Binding { return slices.Clone(b.bindings) }

// Section starts a group of settings in the reference: those bound after it, until the next.
func (b *Binder) Section(title string) { b.section = title }

func (b *Binder) add(bd *Binding) *Binding {
	bd.Section = b.section
	b.bindings = append(b.bindings, bd)
	return bd
}

func (b *Binder) bind(name string, target any, v flag.Value, usage string) *Binding {
	b.fs.Var(v, name, usage)
	return b.add(&Binding{Flag: name, Default: v.String(), Usage: usage, Target: target, value: v})
}

// String binds *p to --name, with default def.
func (b *Binder) String(p *string, name, def, usage string) *Binding {
	*p = def
	return b.bind(name, p, (*stringValue)(p), usage)
}

// Bool binds *p to --name.
func (b *Binder) Bool(p *bool, name string, def bool, usage string) *Binding {
	*p = def
	return b.bind(name, p, (*boolValue)(p), usage)
}

// Int64 binds *p to --name.
func (b *Binder) Int64(p *int64, name string, def int64, usage string) *Binding {
	*p = def
	return b.bind(name, p, (*int64Value)(p), usage)
}

// Float64 binds *p to --name.
func (b *Binder) Float64(p *float64, name string, def float64, usage string) *Binding {
	*p = def
	return b.bind(name, p, (*float64Value)(p), usage)
}

// Duration binds *p to --name.
func (b *Binder) Duration(p *time.Duration, name string, def time.Duration, usage string) *Binding {
	*p = def
	return b.bind(name, p, (*durationValue)(p), usage)
}

// List binds *p to --name, a comma-separated list whose empty items are dropped.
func (b *Binder) List(p *[]string, name string, def []string, usage string) *Binding {
	*p = slices.Clone(def)
	return b.bind(name, p, (*listValue)(p), usage)
}

// SecretEnv binds *p to the environment variable env alone: secrets stay out of the
// process list and the logs.
func (b *Binder) SecretEnv(p *string, env, usage string) *Binding {
	return b.add(&Binding{Env: env, Usage: usage, Secret: true, Target: p, value: (*stringValue)(p)})
}

// External documents an environment variable that a library reads itself (client-go's
// KUBECONFIG): it is listed in the reference, and bound to nothing here.
func (b *Binder) External(env, def, usage string) {
	b.add(&Binding{Env: env, Default: def, Usage: usage})
}

// Library documents the flags register adds to the flag set (a library's own, such as
// controller-runtime's zap flags), all of them owned by the setting at target.
func (b *Binder) Library(target any, owner string, register func(*flag.FlagSet)) {
	before := map[string]bool{}
	b.fs.VisitAll(func(f *flag.Flag) { before[f.Name] = true })
	register(b.fs)
	b.fs.VisitAll(func(f *flag.Flag) {
		if !before[f.Name] {
			b.add(&Binding{Flag: f.Name, Default: f.DefValue, Usage: f.Usage, Target: target, Owner: owner, value: f.Value})
		}
	})
}

// FromEnv lets the environment variable env set the flag too; the flag wins over it.
func (bd *Binding) FromEnv(env string) *Binding {
	bd.Env = env
	return bd
}

// DefaultText replaces how the reference shows the default.
func (bd *Binding) DefaultText(text string) *Binding {
	bd.Default = text
	return bd
}

// Parse sets each setting from its environment variable (lookupEnv, os.LookupEnv in a
// program), then from args: a flag given on the command line wins over the environment.
func (b *Binder) Parse(args []string, lookupEnv func(string) (string, bool)) error {
	for _, bd := range b.bindings {
		if bd.Env == "" || bd.value == nil {
			continue
		}
		if v, ok := lookupEnv(bd.Env); ok && v != "" {
			if err := bd.value.Set(v); err != nil {
				return fmt.Errorf("environment variable %s: %w", bd.Env, err)
			}
		}
	}
	b.fs.SetOutput(io.Discard) // the caller says what went wrong, once
	if err := b.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errors.New(strings.Replace(err.Error(), " -", " --", 1)) // the flag package writes -name
	}
	if b.fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: every setting is a --flag", b.fs.Arg(0))
	}
	return nil
}

// Usage writes --help: every flag, then the environment variables.
func (b *Binder) Usage(w io.Writer, program string) {
	fmt.Fprintf(w, "Usage: %s [flags]\n\nFlags:\n", program)
	b.fs.VisitAll(func(f *flag.Flag) {
		kind := "value"
		if k, ok := f.Value.(interface{ kind() string }); ok {
			kind = k.kind()
		} else if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
			kind = ""
		}
		fmt.Fprintf(w, "  --%s %s\n    \t%s", f.Name, kind, f.Usage)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
	fmt.Fprintf(w, "\nEnvironment variables:\n")
	for _, bd := range b.bindings {
		switch {
		case bd.Env != "" && bd.Flag != "":
			fmt.Fprintf(w, "  %s\n    \tsets --%s (the flag wins)\n", bd.Env, bd.Flag)
		case bd.Env != "":
			fmt.Fprintf(w, "  %s\n    \t%s\n", bd.Env, bd.Usage)
		}
	}
}

// Named returns the binding of "--flag" or of the environment variable "NAME", or nil.
func (b *Binder) Named(name string) *Binding {
	for _, bd := range b.bindings {
		if (bd.Flag != "" && "--"+bd.Flag == name) || (bd.Env != "" && bd.Env == name) {
			return bd
		}
	}
	return nil
}

// Find returns the binding whose target is p, or nil.
func (b *Binder) Find(p any) *Binding {
	want := reflect.ValueOf(p).Pointer()
	for _, bd := range b.bindings {
		if bd.Target != nil && reflect.ValueOf(bd.Target).Pointer() == want && reflect.TypeOf(bd.Target) == reflect.TypeOf(p) {
			return bd
		}
	}
	return nil
}

// The values of the flags: each converts its field's type from text, with an error that
// says what was expected (the flag package only says "parse error"), and names its kind
// for --help.

type stringValue string

func (v *stringValue) Set(s string) error { *v = stringValue(s); return nil }
func (v *stringValue) String() string     { return string(*v) }
func (v *stringValue) kind() string       { return "string" }

type boolValue bool

func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("not true or false: %q", s)
	}
	*v = boolValue(b)
	return nil
}
func (v *boolValue) String() string   { return strconv.FormatBool(bool(*v)) }
func (v *boolValue) IsBoolFlag() bool { return true }
func (v *boolValue) kind() string     { return "" }

type int64Value int64

func (v *int64Value) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("not a whole number: %q", s)
	}
	*v = int64Value(n)
	return nil
}
func (v *int64Value) String() string { return strconv.FormatInt(int64(*v), 10) }
func (v *int64Value) kind() string   { return "int" }

type float64Value float64

func (v *float64Value) Set(s string) error {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("not a number: %q", s)
	}
	*v = float64Value(f)
	return nil
}
func (v *float64Value) String() string { return strconv.FormatFloat(float64(*v), 'g', -1, 64) }
func (v *float64Value) kind() string   { return "number" }

type durationValue time.Duration

func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("not a duration such as 90s, 15m or 720h: %q", s)
	}
	*v = durationValue(d)
	return nil
}
func (v *durationValue) String() string { return time.Duration(*v).String() }
func (v *durationValue) kind() string   { return "duration" }

type listValue []string

func (v *listValue) Set(s string) error {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	*v = out
	return nil
}
func (v *listValue) String() string { return strings.Join(*v, ",") }
func (v *listValue) kind() string   { return "list" }
