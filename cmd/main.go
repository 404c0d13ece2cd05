// Command manager runs the UserCredits controller and the /api/credits HTTP API in one
// controller-runtime manager. Every setting is a flag or an environment variable bound in
// internal/operator/options (docs/flags.md); for a local control plane, use `make run`.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	// Root CAs inside the binary: the image has no /etc/ssl, and Clerk's JWKS is HTTPS.
	_ "golang.org/x/crypto/x509roots/fallback"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/gitread/usercredits-operator/internal/operator"
	"github.com/gitread/usercredits-operator/internal/operator/options"
)

func main() {
	opts, flags, err := options.Parse(os.Args[1:], os.LookupEnv)
	switch {
	case errors.Is(err, flag.ErrHelp):
		flags.Usage(os.Stdout, "manager")
		os.Exit(0)
	case err != nil:
		fmt.Fprintf(os.Stderr, "manager: %v\n(manager --help lists every flag and environment variable)\n", err)
		os.Exit(2)
	}
	ctrl.SetLogger(opts.Logger())
	if err := operator.Run(ctrl.SetupSignalHandler(), opts); err != nil {
		ctrl.Log.Error(err, "manager stopped")
		os.Exit(1)
	}
}
