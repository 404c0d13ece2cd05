package controlplane

import (
	"os"
	"strings"
	"testing"
)

func TestK8sVersionComesFromGoMod(t *testing.T) {
	v, err := K8sVersion()
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(gomod), "k8s.io/api "+strings.Replace(v, "v1.", "v0.", 1)+"\n") {
		t.Fatalf("K8sVersion %s does not match go.mod's k8s.io/api", v)
	}
}
