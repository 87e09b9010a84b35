package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/moby/moby/client"
)

// Standin describes a stand-in base image assembled from this machine's own
// files, for a pack whose standard base image cannot be pulled (no registry
// can be reached here). It has the same toolchain as the machine.
type Standin struct {
	Tag string
	// Paths are absolute paths of files and directories to copy to the same
	// place in the image. Listed files are copied with their content (links
	// followed); inside a directory, symbolic links stay links.
	Paths []string
	// Skip leaves out paths under a directory whose base name or path
	// relative to that directory is listed, and files ending in a listed
	// suffix that starts with "*".
	Skip []string
	// Links are symbolic links to create (path → target).
	Links map[string]string
	// Env are the image's ENV settings (KEY=VALUE).
	Env []string
}

var lddRE = regexp.MustCompile(`(?m)(?:=>\s*)?(/\S+)\s+\(0x`)

// BuildStandin imports the stand-in as an image (FROM nothing) with every
// shared library its ELF files need, a /tmp, a /root and an /etc/passwd.
// An image of the same tag and description is reused. It returns the ID.
func BuildStandin(ctx context.Context, s Standin) (string, error) {
	desc, _ := json.Marshal(s)
	sum := sha256.Sum256(desc)
	digest := hex.EncodeToString(sum[:8])
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return "", err
	}
	defer cli.Close()
	if img, err := cli.ImageInspect(ctx, s.Tag); err == nil && img.Config != nil && img.Config.Labels["wisp.standin"] == digest {
		return img.ID, nil
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeStandin(ctx, pw, s)) }()
	changes := []string{"LABEL wisp.standin=" + digest, "LABEL wisp.test-image=true"}
	for _, e := range s.Env {
		changes = append(changes, "ENV "+e)
	}
	res, err := cli.ImageImport(ctx, client.ImageImportSource{Source: pr, SourceName: "-"}, s.Tag, client.ImageImportOptions{Changes: changes})
	if err != nil {
		_ = pr.Close()
		return "", fmt.Errorf("import stand-in %s: %w", s.Tag, err)
	}
	out, err := io.ReadAll(res)
	_ = res.Close()
	if err != nil {
		return "", fmt.Errorf("import stand-in %s: %w", s.Tag, err)
	}
	if bytes.Contains(out, []byte(`"error"`)) {
		return "", fmt.Errorf("import stand-in %s: %s", s.Tag, out)
	}
	img, err := cli.ImageInspect(ctx, s.Tag)
	if err != nil {
		return "", fmt.Errorf("import stand-in %s: %w", s.Tag, err)
	}
	return img.ID, nil
}

// standinWriter writes a root file system as a tar, each path once.
type standinWriter struct {
	tw   *tar.Writer
	seen map[string]bool
	elfs []string
}

func (w *standinWriter) dir(name string) error {
	name = strings.Trim(name, "/")
	if name == "" || name == "." || w.seen[name] {
		return nil
	}
	if err := w.dir(filepath.Dir(name)); err != nil {
		return err
	}
	w.seen[name] = true
	return w.tw.WriteHeader(&tar.Header{Name: name + "/", Typeflag: tar.TypeDir, Mode: 0o755})
}

func (w *standinWriter) link(name, target string) error {
	name = strings.TrimPrefix(name, "/")
	if w.seen[name] {
		return nil
	}
	if err := w.dir(filepath.Dir(name)); err != nil {
		return err
	}
	w.seen[name] = true
	return w.tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777})
}

// file copies host file src (links followed) to name.
func (w *standinWriter) file(name, src string) error {
	name = strings.TrimPrefix(name, "/")
	if w.seen[name] {
		return nil
	}
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if err := w.dir(filepath.Dir(name)); err != nil {
		return err
	}
	w.seen[name] = true
	f, err := os.Open(src) //nolint:gosec // G304: test tooling copies the machine's own toolchain
	if err != nil {
		return err
	}
	defer f.Close()
	var magic [4]byte
	if n, _ := f.ReadAt(magic[:], 0); n == 4 && string(magic[:]) == "\x7fELF" {
		w.elfs = append(w.elfs, src)
	}
	if err := w.tw.WriteHeader(&tar.Header{Name: name, Mode: int64(fi.Mode().Perm()), Size: fi.Size()}); err != nil {
		return err
	}
	_, err = io.Copy(w.tw, f)
	return err
}

func skipped(rel, base string, skip []string) bool {
	for _, s := range skip {
		if suffix, ok := strings.CutPrefix(s, "*"); ok && strings.HasSuffix(base, suffix) || s == base || s == rel {
			return true
		}
	}
	return false
}

func writeStandin(ctx context.Context, out io.Writer, s Standin) error {
	w := &standinWriter{tw: tar.NewWriter(out), seen: map[string]bool{}}
	for _, d := range []string{"tmp", "root", "etc"} {
		if err := w.dir(d); err != nil {
			return err
		}
	}
	passwd := "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n" //nolint:gosec // G101: an /etc/passwd without passwords
	if err := w.tw.WriteHeader(&tar.Header{Name: "etc/passwd", Mode: 0o644, Size: int64(len(passwd))}); err != nil {
		return err
	}
	if _, err := io.WriteString(w.tw, passwd); err != nil {
		return err
	}
	w.seen["etc/passwd"] = true
	for _, p := range s.Paths {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			if err := w.file(p, p); err != nil {
				return err
			}
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(p, path)
			if rel != "." && skipped(rel, d.Name(), s.Skip) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			switch {
			case d.IsDir():
				return w.dir(path)
			case d.Type()&fs.ModeSymlink != 0:
				target, err := os.Readlink(path)
				if err != nil {
					return err
				}
				return w.link(path, target)
			case d.Type().IsRegular():
				return w.file(path, path)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	names := make([]string, 0, len(s.Links))
	for name := range s.Links {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := w.link(name, s.Links[name]); err != nil {
			return err
		}
	}
	// The shared libraries of every ELF file, at their paths here.
	libs := map[string]bool{}
	for _, elf := range w.elfs {
		out, err := exec.CommandContext(ctx, "ldd", elf).Output() //nolint:gosec // G204: ldd of our own copied files
		if err != nil {
			continue // static, or not an executable
		}
		for _, m := range lddRE.FindAllStringSubmatch(string(out), -1) {
			libs[m[1]] = true
		}
	}
	sorted := make([]string, 0, len(libs))
	for l := range libs {
		sorted = append(sorted, l)
	}
	sort.Strings(sorted)
	for _, l := range sorted {
		if err := w.file(l, l); err != nil {
			return err
		}
	}
	return w.tw.Close()
}

// RemoveLabelledImages removes, forcibly, every image whose label key has a
// value that starts with prefix.
func RemoveLabelledImages(ctx context.Context, key, prefix string) error {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return err
	}
	defer cli.Close()
	res, err := cli.ImageList(ctx, client.ImageListOptions{Filters: client.Filters{}.Add("label", key)})
	if err != nil {
		return err
	}
	for _, img := range res.Items {
		if strings.HasPrefix(img.Labels[key], prefix) {
			if _, err := cli.ImageRemove(ctx, img.ID, client.ImageRemoveOptions{Force: true, PruneChildren: true}); err != nil {
				return err
			}
		}
	}
	return nil
}
