package main

import (
	"fmt"
	"os"

	"github.com/gitread/usercredits-operator/internal/auth"
	"github.com/gitread/usercredits-operator/internal/operator"
	"github.com/gitread/usercredits-operator/test/framework"
)

// soloEnv is what a scenario run alone (-import-only, -lots-only, -start-only) works with: a
// work directory, the manager binary, a control plane of its own with an admin kubeconfig,
// and the signer of the users' session tokens.
type soloEnv struct {
	work, bin, kubeconfig string
	cluster               *framework.Cluster
	signer                *auth.Signer
}

// soloRun builds the manager (or uses managerBin), starts a control plane with namespaces,
// runs f in it and tears it all down. workPrefix names the work directory.
func soloRun(workPrefix, managerBin string, namespaces []string, f func(e soloEnv) error) error {
	work, err := os.MkdirTemp("", workPrefix)
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	step("building the manager binary, starting kube-apiserver and etcd")
	e := soloEnv{work: work, bin: managerBin}
	if e.bin == "" {
		if e.bin, err = framework.BuildManager(work); err != nil {
			return err
		}
	}
	if e.cluster, err = framework.StartCluster(operator.NewScheme(), framework.ClusterOptions{Namespaces: namespaces}); err != nil {
		return err
	}
	defer func() { _ = e.cluster.Stop() }()
	if e.kubeconfig, err = adminKubeconfig(e.cluster.Env, work); err != nil {
		return err
	}
	if e.signer, err = auth.NewSigner("bench"); err != nil {
		return err
	}
	return f(e)
}

// exitCode is what a scenario run alone exits with: 1 when it failed (err, printed) or
// missed one of its targets (each printed on a line of its own; asked only of a run that
// did not fail).
func exitCode(err error, targets func() []target) int {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	code := 0
	for _, t := range targets() {
		fmt.Printf("%-70s %-20s %s  %s\n", t.what, t.goal, t.measured, mark(t.met))
		if !t.met {
			code = 1
		}
	}
	return code
}
