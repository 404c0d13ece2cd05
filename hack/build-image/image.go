package main

// This file builds the operator's container image without Docker or network: the
// static manager binary on an empty base, as an OCI image.

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	// BinaryPath is where the manager lives in the image, and the entrypoint.
	BinaryPath = "/manager"
	// NonRootUser is distroless' "nonroot" user and group; the Deployment runs as it too.
	NonRootUser = "65532:65532"
)

// Build returns a linux/amd64 OCI image with binary as its only program, running as a
// non-root user. The binary must be a static ELF: the empty base has no libc or loader.
// created fixes the timestamps, so the same binary always gives the same image digest.
func Build(binary []byte, created time.Time) (v1.Image, error) {
	if err := checkStatic(binary); err != nil {
		return nil, err
	}
	layerTar, err := rootFS(binary, created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerTar)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{CreatedBy: "usercredits-operator make image", Created: v1.Time{Time: created}}})
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.Created = v1.Time{Time: created}
	cfg.Config.User = NonRootUser
	cfg.Config.Entrypoint = []string{BinaryPath}
	cfg.Config.WorkingDir = "/"
	cfg.Config.Labels = map[string]string{"org.opencontainers.image.title": "usercredits-operator"}
	return mutate.ConfigFile(img, cfg)
}

// WriteTarball writes img tagged ref to path as an OCI image layout archive (oci-layout,
// index.json, blobs/), which `docker load` (25+), `podman load`, `skopeo` and containerd's
// `ctr import` read.
func WriteTarball(path, ref string, img v1.Image) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "usercredits-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	err = p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": tag.TagStr(),
		"io.containerd.image.name":          tag.String(), // the name docker and containerd load it as
	}))
	if err != nil {
		return err
	}
	return tarDir(dir, path)
}

// tarDir writes the files under dir to a tar archive at path, with fixed metadata.
func tarDir(dir, path string) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(out)
	err = filepath.WalkDir(dir, func(file string, d fs.DirEntry, err error) error {
		if err != nil || file == dir {
			return err
		}
		rel, err := filepath.Rel(dir, file)
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, ModTime: time.Unix(0, 0)}
		if d.IsDir() {
			hdr.Name, hdr.Typeflag, hdr.Mode = hdr.Name+"/", tar.TypeDir, 0o755
			return tw.WriteHeader(hdr)
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(data))
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if cerr := tw.Close(); err == nil {
		err = cerr
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// rootFS is the image's only layer: the binary and a world-writable /tmp.
func rootFS(binary []byte, created time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	entries := []struct {
		hdr  tar.Header
		data []byte
	}{
		{tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777, ModTime: created}, nil},
		{tar.Header{Name: BinaryPath[1:], Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(binary)), ModTime: created}, binary},
	}
	for _, e := range entries {
		if err := tw.WriteHeader(&e.hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// checkStatic refuses anything but a statically linked linux/amd64 executable.
func checkStatic(binary []byte) error {
	f, err := elf.NewFile(bytes.NewReader(binary))
	if err != nil {
		return fmt.Errorf("not an ELF executable: %w", err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("binary is for %v, the image is linux/amd64", f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("binary is dynamically linked; build it with CGO_ENABLED=0")
		}
	}
	return nil
}
