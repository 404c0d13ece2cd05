// Command kubectl-credits is the kubectl plugin `kubectl credits`: it imports an export of
// the credits table of the service this operator replaces (Supabase: user_id, credits,
// updated_at; CSV or JSON) into UserCredits objects, exactly once, and exports every
// user's balance, holds and lots from one consistent LIST. Put it on the PATH (make build
// writes bin/kubectl-credits) and run `kubectl credits import FILE` or `kubectl credits
// export`. docs/migration.md walks through a move from Supabase.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-logr/logr"
	"github.com/spf13/pflag"
	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

// Exit codes.
const (
	exitOK = 0
	// exitFailed: the run could not do all it should (a write failed, the file or the
	// cluster could not be read, interrupted). What it wrote stays; a re-run finishes it.
	exitFailed = 1
	// exitUsage: the command line is wrong; nothing was done.
	exitUsage = 2
)

const usage = `kubectl credits: move balances into and out of UserCredits.

Usage:
  kubectl credits import FILE [flags]   import a CSV or JSON export of the credits table (FILE - reads stdin)
  kubectl credits export [flags]        write every user's balance, holds and lots, as CSV or JSON

An import writes each row at most once: a second run, or one after an interrupted run,
writes only what is missing, and says so. Bad rows are listed with their line numbers and
skipped; a user who already has another balance is listed and left alone unless
--overwrite. See docs/migration.md.

Flags:
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// options are the flags of both subcommands.
type options struct {
	kubeconfig, kubeContext, namespace string
	qps                                float32
	burst                              int
	verbose                            bool

	format      string
	overwrite   bool
	dryRun      bool
	concurrency int
	progress    bool
	output      string
	pageSize    int64
}

func flagSet(o *options, stderr io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet("kubectl credits", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
	fs.StringVar(&o.kubeContext, "context", "", "the kubeconfig context to use (default: its current context)")
	fs.StringVarP(&o.namespace, "namespace", "n", "", "the namespace of the UserCredits: the operator's (default: the context's namespace, else default)")
	fs.Float32Var(&o.qps, "qps", 1000, "at most this many apiserver requests a second (0: no limit); lower it to leave the live API room")
	fs.IntVar(&o.burst, "burst", 1000, "requests allowed at once above --qps")
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "log each step")
	fs.StringVar(&o.format, "format", "auto", "csv or json; auto: from the file's name, else its contents (import) or -o's name, else csv (export)")
	fs.BoolVar(&o.overwrite, "overwrite", false, "import: replace the balance of users who already have another one (each is listed)")
	fs.BoolVar(&o.dryRun, "dry-run", false, "import: read the file and the cluster and say what would be written; write nothing")
	fs.IntVar(&o.concurrency, "concurrency", 16, "import: writes in flight at once")
	fs.BoolVar(&o.progress, "progress", true, "import: show a progress bar (a line every 10s when stderr is not a terminal)")
	fs.StringVarP(&o.output, "output", "o", "-", "export: the file to write (-: stdout); written whole or not at all")
	fs.Int64Var(&o.pageSize, "page-size", 1000, "objects per page of the LIST (every page is read at the first one's resourceVersion)")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	return fs
}

// run is the command: args without the program's name.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var o options
	fs := flagSet(&o, stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return exitUsage
	}
	level := zapcore.ErrorLevel
	if o.verbose {
		level = zapcore.DebugLevel
	}
	log := zap.New(zap.WriteTo(stderr), zap.Level(level))
	ctrl.SetLogger(log)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch cmd := rest[0]; {
	case cmd == "import" && len(rest) == 2:
		return runImport(ctx, o, rest[1], stdin, stdout, stderr, log)
	case cmd == "export" && len(rest) == 1:
		return runExport(ctx, o, stdout, stderr)
	case cmd == "import":
		fmt.Fprintln(stderr, "kubectl credits import: name one file (- reads stdin)")
	default:
		fmt.Fprintf(stderr, "kubectl credits: unknown command %q: import FILE, or export\n", cmd)
	}
	return exitUsage
}

// connect is a client of the cluster the kubeconfig names, rate-limited by --qps and
// --burst, and the namespace to use.
func connect(o options, log logr.Logger) (client.Client, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: o.kubeContext}
	overrides.Context.Namespace = o.namespace
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("reading the kubeconfig: %w", err)
	}
	namespace, _, err := cc.Namespace()
	if err != nil {
		return nil, "", err
	}
	limit(cfg, o.qps, o.burst)
	cfg.UserAgent = "kubectl-credits"
	scheme := runtime.NewScheme()
	if err := creditsv1alpha1.AddToScheme(scheme); err != nil {
		return nil, "", err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, "", err
	}
	log.V(1).Info("connected", "server", cfg.Host, "namespace", namespace, "qps", cfg.QPS, "burst", cfg.Burst)
	return c, namespace, nil
}

// limit sets the client-side rate limit: qps requests a second, burst at once; qps 0 is
// no limit (client-go reads 0 as its default of 5, and a negative value as none).
func limit(cfg *rest.Config, qps float32, burst int) {
	if qps <= 0 {
		cfg.QPS, cfg.Burst = -1, 0
		return
	}
	cfg.QPS, cfg.Burst = qps, max(burst, 1)
}
