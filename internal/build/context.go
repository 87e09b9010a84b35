package build

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/moby/patternmatcher"
)

// DefaultMaxContext bounds a build context (bytes of file content).
const DefaultMaxContext = 256 << 20

// Context is a packed build context.
type Context struct {
	// Tar is the context as a tar stream: deterministic (sorted paths, no
	// times, owners or modes beyond the executable bit).
	Tar []byte
	// Digest is the sha256 of the source files alone (not of the extra
	// files the builder adds), so identical source has identical digests.
	Digest string
	Files  int
	Bytes  int64
}

// ContextOptions shape a context.
type ContextOptions struct {
	// MaxBytes bounds the content; 0 means DefaultMaxContext.
	MaxBytes int64
	// Extra files to add (path in the context → content), such as the
	// generated Dockerfile or the watchdog.
	Extra map[string][]byte
	// ExtraExec marks extra files that must be executable.
	ExtraExec map[string]bool
}

// ignoreFiles are read from the source directory; both apply.
var ignoreFiles = []string{".dockerignore", ".wispignore"}

// Pack builds the context of dir, leaving out what .dockerignore and
// .wispignore exclude, .git, and the ignore files themselves (they have
// done their work here; in the context they would only change its digest).
func Pack(dir string, opts ContextOptions) (*Context, error) {
	if opts.MaxBytes == 0 {
		opts.MaxBytes = DefaultMaxContext
	}
	patterns := append([]string{".git"}, ignoreFiles...)
	for _, name := range ignoreFiles {
		p, err := readIgnore(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		patterns = append(patterns, p...)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, fmt.Errorf("ignore patterns: %w", err)
	}
	type entry struct {
		rel  string
		abs  string
		exec bool
		size int64
	}
	var files []entry
	var total int64
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		skip, err := pm.MatchesOrParentMatches(rel)
		if err != nil {
			return err
		}
		if skip {
			if d.IsDir() && !pm.Exclusions() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil // directories come with their files; links and devices are left out
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		total += info.Size()
		if total > opts.MaxBytes {
			return fmt.Errorf("the build context of %s is over the limit of %s: leave out what the image does not need with a .wispignore (or .dockerignore)", dir, mib(opts.MaxBytes))
		}
		files = append(files, entry{rel: rel, abs: path, exec: info.Mode()&0o111 != 0, size: info.Size()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(files, func(i, j int) bool { return files[i].rel < files[j].rel })

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	digest := sha256.New()
	write := func(name string, exec bool, r io.Reader, size int64, hash bool) error {
		mode := int64(0o644)
		if exec {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: size, Format: tar.FormatPAX}); err != nil {
			return err
		}
		var w io.Writer = tw
		if hash {
			fmt.Fprintf(digest, "%s\x00%d\x00%t\x00", name, size, exec)
			w = io.MultiWriter(tw, digest)
		}
		n, err := io.Copy(w, r)
		if err == nil && n != size {
			err = fmt.Errorf("%s changed while it was read", name)
		}
		return err
	}
	for _, f := range files {
		if _, extra := opts.Extra[f.rel]; extra {
			continue // the builder's version wins
		}
		fh, err := os.Open(f.abs) //nolint:gosec // G304: walking the user's own source directory
		if err != nil {
			return nil, err
		}
		err = write(f.rel, f.exec, fh, f.size, true)
		_ = fh.Close()
		if err != nil {
			return nil, fmt.Errorf("pack %s: %w", f.rel, err)
		}
	}
	extras := make([]string, 0, len(opts.Extra))
	for name := range opts.Extra {
		extras = append(extras, name)
	}
	sort.Strings(extras)
	for _, name := range extras {
		b := opts.Extra[name]
		if err := write(name, opts.ExtraExec[name], bytes.NewReader(b), int64(len(b)), false); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return &Context{Tar: buf.Bytes(), Digest: "sha256:" + hex.EncodeToString(digest.Sum(nil)), Files: len(files), Bytes: total}, nil
}

func readIgnore(path string) ([]string, error) {
	f, err := os.Open(path) //nolint:gosec // G304: the user's own ignore file
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, line)
	}
	return out, sc.Err()
}

func mib(n int64) string { return fmt.Sprintf("%d MiB", n>>20) }
