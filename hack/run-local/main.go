// Command run-local is `make run`: it runs the manager binary for development. With no
// cluster configured (no --kubeconfig, $KUBECONFIG, in-cluster configuration or
// ~/.kube/config) it first starts a throw-away control plane (kube-apiserver and etcd from
// hack/control-plane-binaries.sh) with the CRDs installed; with no Clerk key in the
// environment it generates a development signing key, prints a token, and implies
// --allow-user-writes. The control plane and the manager live and die together: Ctrl-C,
// the manager exiting, or the terminal's pipe closing (make run | tee) stops both.
//
// It is a development entry point of its own so that the manager binary (./cmd) links
// neither envtest nor the control-plane code.
//
// Usage: run-local [--manager bin/manager] [--kubeconfig-out bin/local-kubeconfig] [--crd-dir config/crd/bases] -- [manager flags]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gitread/usercredits-operator/internal/auth"
	"github.com/gitread/usercredits-operator/internal/controlplane"
)

// devUserID is the user of the token printed in development.
const devUserID = "user_dev"

func main() {
	manager := flag.String("manager", "bin/manager", "The manager binary to run.")
	kubeconfigOut := flag.String("kubeconfig-out", "bin/local-kubeconfig", "Where the local control plane's admin kubeconfig is written.")
	crdDir := flag.String("crd-dir", "config/crd/bases", "CRDs installed into the local control plane.")
	flag.Parse()
	os.Exit(run(*manager, *kubeconfigOut, *crdDir, flag.Args()))
}

func run(manager, kubeconfigOut, crdDir string, args []string) int {
	// A closed terminal pipe (make run | tee, then Ctrl-C) must not kill this process
	// before it has stopped the control plane: writes to it fail instead.
	signal.Ignore(syscall.SIGPIPE)
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)

	env := os.Environ()
	var local *controlplane.Local
	kubeconfig := flagValue(args, "kubeconfig")
	if !controlplane.ClusterConfigured(kubeconfig) {
		say("no cluster configured: starting a local control plane (kube-apiserver and etcd)")
		path, err := filepath.Abs(kubeconfigOut)
		if err != nil {
			return fail(err)
		}
		if local, err = controlplane.StartLocal(crdDir, path); err != nil {
			return fail(err)
		}
		defer func() {
			if err := local.Stop(); err != nil {
				say("stopping the local control plane: %v", err)
				return
			}
			say("local control plane stopped")
		}()
		kubeconfig = local.KubeconfigPath
		args = append([]string{"--kubeconfig=" + kubeconfig}, args...)
	}
	var devToken string
	if os.Getenv("CLERK_JWT_KEY") == "" && os.Getenv("CLERK_SECRET_KEY") == "" {
		signer, err := auth.NewSigner("dev")
		if err != nil {
			return fail(err)
		}
		if devToken, err = signer.SessionToken(devUserID, 24*time.Hour); err != nil {
			return fail(err)
		}
		env = append(env, "CLERK_JWT_KEY="+signer.PublicKeyPEM())
		args = append([]string{"--allow-user-writes"}, args...)
	}

	child, err := startManager(manager, args, env)
	if err != nil {
		return fail(err)
	}
	go func() {
		if waitReady(child, healthURL(args), 60*time.Second) {
			printUsage(local, kubeconfig, apiBase(args), devToken)
		}
	}()
	return child.waitOrStop(signals)
}

// printUsage tells the person at the terminal how to reach what just started.
func printUsage(local *controlplane.Local, kubeconfig, apiBase, devToken string) {
	var b strings.Builder
	if local != nil {
		fmt.Fprintf(&b, "\nLocal control plane is up. In another terminal:\n\n  export KUBECONFIG=%s\n"+
			"  kubectl apply --server-side -f config/samples/\n  kubectl get uc\n", kubeconfig)
	}
	if devToken != "" {
		url := apiBase + "/api/credits"
		fmt.Fprintf(&b, "\nDev auth: no CLERK_JWT_KEY or CLERK_SECRET_KEY is set, so a local signing key was generated and\n"+
			"--allow-user-writes is implied (a user may set their own balance). This token is %s for 24h:\n\n  export TOKEN=%s\n\n"+
			"  curl -s %s -H \"Authorization: Bearer $TOKEN\"\n"+
			"  curl -s -X POST %s -H \"Authorization: Bearer $TOKEN\" -d '{\"credits\": 10}'\n",
			devUserID, devToken, url, url)
	}
	b.WriteString("\nCtrl-C stops everything.\n\n")
	fmt.Fprint(os.Stderr, b.String())
}

// flagValue is the last value args give --name (or -name), "" when none.
func flagValue(args []string, name string) string {
	value := ""
	for i, a := range args {
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			value = v
		} else if a == name && i+1 < len(args) {
			value = args[i+1]
		}
	}
	return value
}

// localURL is the loopback URL of a listen address such as ":8080" or "0.0.0.0:8080".
func localURL(scheme, addr string) string {
	return scheme + "://127.0.0.1" + addr[strings.LastIndex(addr, ":"):]
}

func healthURL(args []string) string {
	addr := flagValue(args, "health-probe-bind-address")
	if addr == "" {
		addr = ":8081"
	}
	return localURL("http", addr) + "/readyz"
}

func apiBase(args []string) string {
	addr, scheme := flagValue(args, "api-bind-address"), "http"
	if addr == "" {
		addr = ":8080"
	}
	if flagValue(args, "api-cert-dir") != "" {
		scheme = "https"
	}
	return localURL(scheme, addr)
}

func say(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[make run] "+format+"\n", args...)
}

func fail(err error) int {
	say("%v", err)
	return 1
}
