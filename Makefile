# UserCredits operator. The two commands a new user needs: `make run` and `make test`.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_TOOLS_VERSION ?= v0.23.0
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
# The control plane's Kubernetes version is go.mod's k8s.io/api version (v0.X.Y → v1.X.Y).
K8S_VERSION ?= $(shell go list -m -f '{{.Version}}' k8s.io/api | sed 's/^v0\./v1./')
export K8S_VERSION

# Generated files: CRD, RBAC, deepcopy and the flag reference. `make verify-generated` fails when they are stale.
GENERATED := config/crd/bases config/rbac/role.yaml api/v1alpha1/zz_generated.deepcopy.go docs/flags.md

.PHONY: all
all: build

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRD and the manager's ClusterRole from markers, and docs/flags.md from the flags.
	$(CONTROLLER_GEN) rbac:roleName=usercredits-manager-role crd paths="./..." output:crd:artifacts:config=config/crd/bases
	go run ./hack/flags-doc > docs/flags.md

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."

.PHONY: verify-generated
verify-generated: $(CONTROLLER_GEN) ## Fail when the committed generated files differ from what controller-gen produces.
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	for p in $(GENERATED); do mkdir -p "$$tmp/$$(dirname $$p)"; cp -r "$$p" "$$tmp/$$p"; done; \
	$(MAKE) --no-print-directory manifests generate >/dev/null; \
	stale=0; for p in $(GENERATED); do diff -ru "$$tmp/$$p" "$$p" || stale=1; done; \
	if [ $$stale = 1 ]; then echo "generated files were stale: they are now regenerated, commit them"; exit 1; fi; \
	echo "generated files are up to date"

.PHONY: fmt
fmt: ## Run gofmt and fail on unformatted files.
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: control-plane
control-plane: ## Build (once, then cached) kube-apiserver and etcd for envtest and make run.
	@hack/control-plane-binaries.sh >/dev/null

.PHONY: test
test: verify-generated fmt vet control-plane ## Run all tests against a real kube-apiserver and etcd.
	KUBEBUILDER_ASSETS="$$(hack/control-plane-binaries.sh)" go test -count=1 -timeout 20m ./... $(TEST_ARGS)

##@ Build and run

.PHONY: build
build: manifests generate ## Build the manager binary and the kubectl plugin (bin/kubectl-credits: kubectl credits import/export).
	go build -o $(LOCALBIN)/manager ./cmd
	go build -o $(LOCALBIN)/kubectl-credits ./cmd/kubectl-credits

.PHONY: run
run: build control-plane ## Run the manager (RUN_ARGS: its flags); starts a local control plane when no cluster is configured.
	go build -o $(LOCALBIN)/run-local ./hack/run-local
	KUBEBUILDER_ASSETS="$$(hack/control-plane-binaries.sh)" $(LOCALBIN)/run-local --manager=$(LOCALBIN)/manager -- $(RUN_ARGS)

$(CONTROLLER_GEN):
	@mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/controller-gen $(CONTROLLER_GEN)

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-18s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Image

# The image's tag, and the reference make image records. config/manager/kustomization.yaml's
# images: entry names the same reference (test/e2e checks it), so config/default deploys what
# make image built. Not `latest`: the kubelet would then always pull (imagePullPolicy Always),
# and an image loaded onto the nodes without a registry (kind load) would never start.
IMAGE_TAG ?= v0.1.0
IMG ?= usercredits-operator:$(IMAGE_TAG)

.PHONY: image
image: manifests generate ## Build the OCI image tarball bin/usercredits-operator.tar without Docker or network.
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -ldflags "-s -w" -o $(LOCALBIN)/manager-linux-amd64 ./cmd
	go run ./hack/build-image -binary $(LOCALBIN)/manager-linux-amd64 -out $(LOCALBIN)/usercredits-operator.tar -tag $(IMG)

.PHONY: docker-build
docker-build: ## Build the image with Docker (for machines that have it).
	docker build -t $(IMG) .

##@ Benchmarks

.PHONY: bench
# SCALE is how many UserCredits the scale scenario starts an operator on. The default run
# (100000) writes docs/benchmarks.md; any other SCALE (make bench SCALE=1000000) runs the
# scale scenario alone, once, and writes docs/benchmarks-$(SCALE).md instead.
SCALE ?= 100000
SCALE_ONLY = $(if $(filter-out 100000,$(SCALE)),-scale-only -rounds 1 -scale-doc docs)

bench: control-plane ## Measure throughput, latency, memory and start-up; writes docs/benchmarks.md and docs/bench-latency.png.
	KUBEBUILDER_ASSETS="$$(hack/control-plane-binaries.sh)" go run ./hack/bench -scale $(SCALE) $(SCALE_ONLY) $(BENCH_ARGS)

.PHONY: docs
docs: ## Regenerate docs/bad-inputs.md from the bad-input test cases.
	go test ./internal/httpapi -run TestBadInputTable -count=1 -update
