// Command harness does the parts of the test cluster's set-up that need Go
// rather than shell (scripts/kube/up.sh calls it):
//
//	harness image BINARY REF OUT.tar   pack a static binary as a one-layer image tarball
//	harness registry ADDR DIR          serve an OCI registry (plain HTTP) on ADDR, blobs in DIR
//	harness free-ports N               print N free 127.0.0.1 TCP ports
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/wisp-run/wisp/internal/runtime/kube/kubeimage"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: harness image|registry|free-ports ARGS")
	}
	switch args[0] {
	case "image":
		if len(args) != 4 {
			return errors.New("usage: harness image BINARY REF OUT.tar")
		}
		return packImage(args[1], args[2], args[3])
	case "registry":
		if len(args) != 3 {
			return errors.New("usage: harness registry ADDR DIR")
		}
		return serveRegistry(args[1], args[2])
	case "free-ports":
		n := 1
		if len(args) == 2 {
			var err error
			if n, err = strconv.Atoi(args[1]); err != nil || n < 1 {
				return fmt.Errorf("free-ports: %q is not a count", args[1])
			}
		}
		return freePorts(n)
	}
	return fmt.Errorf("unknown command %q", args[0])
}

// packImage makes a one-layer image holding binary as /<base name>, its
// entrypoint, and writes it as a tarball that ctr can import.
func packImage(binary, ref, out string) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(binary) //nolint:gosec // G304: the binary the harness was asked to pack
	if err != nil {
		return err
	}
	img, err := kubeimage.Binary(data, filepath.Base(binary), kubeimage.Config{Arch: goruntime.GOARCH})
	if err != nil {
		return err
	}
	return tarball.WriteToFile(out, tag, img)
}

func serveRegistry(addr, dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil { //nolint:gosec // G703: the directory the harness was told to keep blobs in
		return err
	}
	h := registry.New(registry.WithBlobHandler(registry.NewDiskBlobHandler(dir)), registry.Logger(slog.NewLogLogger(slog.NewTextHandler(os.Stderr, nil), slog.LevelInfo)))
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	return srv.ListenAndServe()
}

func freePorts(n int) error {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		ls = append(ls, l)
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
	}
	return nil
}
