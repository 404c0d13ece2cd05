// Command build-image writes the operator's OCI image as a tarball, without Docker or
// network (make image). Load it with `docker load -i`, `podman load -i` or
// `kind load image-archive`.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"
)

func main() {
	binary := flag.String("binary", "bin/manager-linux-amd64", "static linux/amd64 manager binary")
	out := flag.String("out", "bin/usercredits-operator.tar", "image tarball to write")
	tag := flag.String("tag", "usercredits-operator:latest", "image reference recorded in the tarball")
	flag.Parse()

	if err := build(*binary, *out, *tag); err != nil {
		fmt.Fprintln(os.Stderr, "build-image:", err)
		os.Exit(1)
	}
}

func build(binaryPath, out, tag string) error {
	binary, err := os.ReadFile(binaryPath)
	if err != nil {
		return err
	}
	// Reproducible: the same binary gives the same digest (SOURCE_DATE_EPOCH, else 1970).
	created := time.Unix(0, 0).UTC()
	if epoch, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil {
		created = time.Unix(epoch, 0).UTC()
	}
	img, err := Build(binary, created)
	if err != nil {
		return err
	}
	if err := WriteTarball(out, tag, img); err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s (%s, %s)\n", out, tag, digest)
	return nil
}
