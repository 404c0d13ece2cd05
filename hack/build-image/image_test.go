package main

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// staticBinary builds a tiny static Go program, as `make image` builds the manager.
func staticBinary(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\n\nfunc main() { println(\"hi\") }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "hello")
	cmd := exec.Command("go", "build", "-o", out, src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GO111MODULE=off")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building a static binary: %v\n%s", err, msg)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestImageTarballHasTheRightConfigAndLayer(t *testing.T) {
	binary := staticBinary(t)
	created := time.Unix(0, 0).UTC()
	img, err := Build(binary, created)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "image.tar")
	if err := WriteTarball(path, "usercredits-operator:test", img); err != nil {
		t.Fatal(err)
	}

	// Read it back the way a runtime would: unpack the archive, open the OCI layout.
	loaded, ref := readArchive(t, path)
	if ref != "usercredits-operator:test" {
		t.Errorf("image name annotation %q", ref)
	}
	cfg, err := loaded.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OS != "linux" || cfg.Architecture != "amd64" || cfg.Config.User != "65532:65532" ||
		!slices.Equal(cfg.Config.Entrypoint, []string{"/manager"}) {
		t.Fatalf("config: os=%s arch=%s user=%q entrypoint=%v", cfg.OS, cfg.Architecture, cfg.Config.User, cfg.Config.Entrypoint)
	}
	if mt, _ := loaded.MediaType(); mt != types.OCIManifestSchema1 {
		t.Errorf("manifest media type %s, want OCI", mt)
	}
	layers, err := loaded.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]*tar.Header{}
	eachTarEntry(t, rc, func(hdr *tar.Header, data []byte) {
		files[hdr.Name] = hdr
		if hdr.Name == "manager" && !bytes.Equal(data, binary) {
			t.Error("the layer's /manager is not the binary given")
		}
	})
	if m := files["manager"]; m == nil || m.Mode != 0o755 || m.Typeflag != tar.TypeReg {
		t.Fatalf("/manager entry: %+v", m)
	}
	if tmp := files["tmp/"]; tmp == nil || tmp.Mode != 0o1777 {
		t.Fatalf("/tmp entry: %+v", tmp)
	}
	if len(files) != 2 {
		t.Fatalf("layer holds %d entries, want exactly /manager and /tmp", len(files))
	}

	again, err := Build(binary, created)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Fatalf("same binary, different digests: %s %s", d1, d2)
	}
}

func TestBuildRefusesDynamicBinaries(t *testing.T) {
	dynamic, err := os.ReadFile("/bin/sh")
	if err != nil {
		t.Skip("no /bin/sh to use as a dynamically linked binary")
	}
	if _, err := Build(dynamic, time.Now()); err == nil {
		t.Fatal("a dynamically linked binary was accepted")
	}
	if _, err := Build([]byte("#!/bin/sh\necho hi\n"), time.Now()); err == nil {
		t.Fatal("a shell script was accepted")
	}
}

// readArchive unpacks an OCI layout archive and returns its one image and name annotation.
func readArchive(t *testing.T, path string) (v1.Image, string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir := t.TempDir()
	eachTarEntry(t, f, func(hdr *tar.Header, data []byte) {
		target := filepath.Join(dir, filepath.FromSlash(hdr.Name))
		var err error
		if hdr.Typeflag == tar.TypeDir {
			err = os.MkdirAll(target, 0o755)
		} else {
			err = os.WriteFile(target, data, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	})
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		t.Fatalf("not an OCI layout: %v", err)
	}
	index, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := index.IndexManifest()
	if err != nil || len(manifest.Manifests) != 1 {
		t.Fatalf("index: %+v %v", manifest, err)
	}
	desc := manifest.Manifests[0]
	img, err := index.Image(desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img, desc.Annotations["io.containerd.image.name"]
}

// eachTarEntry calls fn with every entry of a tar stream and its contents.
func eachTarEntry(t *testing.T, r io.Reader, fn func(*tar.Header, []byte)) {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		fn(hdr, data)
	}
}
