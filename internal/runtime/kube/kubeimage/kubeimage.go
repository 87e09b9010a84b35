// Package kubeimage makes the smallest image there is: one static binary
// as its only file and its entrypoint, for the test cluster's sandbox
// image and the test and benchmark images pushed to its registry (no
// Docker, no base image, nothing pulled).
package kubeimage

import (
	"archive/tar"
	"bytes"
	"io"
	"strconv"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Config is what the image says about itself.
type Config struct {
	Arch   string            // e.g. "amd64"
	Port   int               // exposed, when above 0
	Labels map[string]string // image labels
}

// Binary returns an image holding binary at /name, executable, as its
// entrypoint.
func Binary(binary []byte, name string, c Config) (v1.Image, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(binary)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(binary); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerBytes)), nil })
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", c.Arch
	cf.Config.Entrypoint = []string{"/" + name}
	if c.Port > 0 {
		cf.Config.ExposedPorts = map[string]struct{}{strconv.Itoa(c.Port) + "/tcp": {}}
	}
	cf.Config.Labels = c.Labels
	return mutate.ConfigFile(img, cf)
}
