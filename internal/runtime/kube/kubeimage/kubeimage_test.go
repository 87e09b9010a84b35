package kubeimage

import (
	"archive/tar"
	"io"
	"slices"
	"testing"
)

func TestBinary(t *testing.T) {
	img, err := Binary([]byte("#!binary"), "app", Config{Arch: "amd64", Port: 8080, Labels: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" || !slices.Equal(cf.Config.Entrypoint, []string{"/app"}) || cf.Config.Labels["k"] != "v" {
		t.Fatalf("config %+v", cf)
	}
	if _, ok := cf.Config.ExposedPorts["8080/tcp"]; !ok {
		t.Fatalf("exposed ports %v", cf.Config.ExposedPorts)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%d layers, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	h, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(tr)
	if h.Name != "app" || h.Mode != 0o755 || string(body) != "#!binary" {
		t.Fatalf("file %s mode %o body %q", h.Name, h.Mode, body)
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Fatalf("more than one file: %v", err)
	}
}
