package build

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/wisp-run/wisp/internal/core"
)

type entry struct {
	name string
	typ  byte
	body string
}

func tarOf(t *testing.T, entries ...entry) *bytes.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		if e.typ == 0 {
			e.typ = tar.TypeReg
		}
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body))}
		if e.typ == tar.TypeSymlink {
			hdr.Linkname, hdr.Size = "/etc/passwd", 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			_, _ = io.WriteString(tw, e.body)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(buf.Bytes())
}

func names(t *testing.T, sp *spooled) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(sp.file)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out[hdr.Name] = string(b)
	}
}

func TestSpool(t *testing.T) {
	dir := t.TempDir()
	sp, err := spool(dir, tarOf(t, entry{name: "./", typ: tar.TypeDir}, entry{name: "./src/", typ: tar.TypeDir},
		entry{name: "./src/main.go", body: "package main"}, entry{name: "Dockerfile", body: "FROM scratch"}),
		1<<20, "Dockerfile", map[string][]byte{WatchdogPath: []byte("bin")}, map[string]string{LabelBuildService: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	got := names(t, sp)
	if got["src/main.go"] != "package main" || got["Dockerfile"] != "FROM scratch" || got[WatchdogPath] != "bin" {
		t.Fatalf("spooled entries: %v", got)
	}
	labelled := got[builtDockerfile]
	if !strings.HasPrefix(labelled, "FROM scratch\n") || !strings.Contains(labelled, `wisp.build.service="hello"`) ||
		!strings.Contains(labelled, `wisp.source-digest="`+sp.digest+`"`) || sp.dockerfile != builtDockerfile {
		t.Fatalf("labelled Dockerfile %q (digest %s)", labelled, sp.digest)
	}
	if sp.files != 2 || sp.size != int64(len("package main")+len("FROM scratch")) {
		t.Fatalf("files %d, size %d", sp.files, sp.size)
	}

	// The digest covers the content, the Dockerfile's name and the extras,
	// not the labels or the order of directories.
	digest := func(dockerfile string, extra map[string][]byte, labels map[string]string, entries ...entry) string {
		sp, err := spool(dir, tarOf(t, entries...), 1<<20, dockerfile, extra, labels)
		if err != nil {
			t.Fatal(err)
		}
		defer sp.Close()
		return sp.digest
	}
	base := []entry{{name: "Dockerfile", body: "FROM scratch"}, {name: "a", body: "1"}}
	d0 := digest("Dockerfile", nil, nil, base...)
	if d := digest("Dockerfile", nil, map[string]string{"x": "y"}, base...); d != d0 {
		t.Error("labels changed the digest")
	}
	if d := digest("Dockerfile", nil, nil, entry{name: "./", typ: tar.TypeDir}, base[0], base[1]); d != d0 {
		t.Error("a directory entry changed the digest")
	}
	if d := digest("Dockerfile", nil, nil, base[0], entry{name: "a", body: "2"}); d == d0 {
		t.Error("other content, same digest")
	}
	if d := digest("Dockerfile", map[string][]byte{WatchdogPath: []byte("x")}, nil, base...); d == d0 {
		t.Error("the watchdog is not in the digest")
	}
}

func TestSpoolRefuses(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		r       io.Reader
		max     int64
		kind    error
		message string
	}{
		{"not a tar", strings.NewReader(strings.Repeat("x", 1024)), 1 << 20, core.ErrInvalid, "not a valid tar stream"},
		{"no Dockerfile", tarOf(t, entry{name: "a", body: "1"}), 1 << 20, core.ErrInvalid, "has no Dockerfile"},
		{"parent", tarOf(t, entry{name: "../a", body: "1"}, entry{name: "Dockerfile"}), 1 << 20, core.ErrInvalid, "outside the context"},
		{"absolute", tarOf(t, entry{name: "/etc/a", body: "1"}, entry{name: "Dockerfile"}), 1 << 20, core.ErrInvalid, "outside the context"},
		{"symlink", tarOf(t, entry{name: "l", typ: tar.TypeSymlink}, entry{name: "Dockerfile"}), 1 << 20, core.ErrInvalid, "not a regular file"},
		{"too large", tarOf(t, entry{name: "Dockerfile", body: strings.Repeat("x", 4096)}), 2048, core.ErrTooLarge, "over this server's limit"},
		{"cut short", io.LimitReader(tarOf(t, entry{name: "Dockerfile", body: strings.Repeat("x", 4096)}), 1000), 1 << 20, core.ErrInvalid, ""},
	} {
		sp, err := spool(dir, tc.r, tc.max, "Dockerfile", nil, nil)
		if err == nil {
			sp.Close()
			t.Errorf("%s: spooled", tc.name)
			continue
		}
		if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.message) {
			t.Errorf("%s: %v, want %v with %q", tc.name, err, tc.kind, tc.message)
		}
	}
}
