package build

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/wisp-run/wisp/internal/core"
)

// spooled is an uploaded build context, checked and saved to a file, with
// the digest of everything in it.
type spooled struct {
	file *os.File
	// dockerfile is the Dockerfile to build: the uploaded one with the
	// labels appended as one LABEL instruction (the engine's own label
	// option adds one build step per label, about a second each here).
	dockerfile string
	digest     string
	files      int
	size       int64
}

func (s *spooled) Close() {
	_ = s.file.Close()
	_ = os.Remove(s.file.Name())
}

// spool reads an uploaded context (a tar stream) into a temporary file in
// dir, refusing anything over maxBytes, entries other than files and
// directories, and paths that leave the context. It appends extra (name →
// content, executable) and hashes every entry, so the digest covers the
// source, the Dockerfile and what Wisp added. dockerfile must be in it. The
// image gets labels and LabelSourceDigest through a copy of the Dockerfile
// (at builtDockerfile) that is not part of the digest.
func spool(dir string, r io.Reader, maxBytes int64, dockerfile string, extra map[string][]byte, labels map[string]string) (_ *spooled, err error) {
	f, err := os.CreateTemp(dir, "wisp-context-*.tar")
	if err != nil {
		return nil, fmt.Errorf("spool the build context: %w", err)
	}
	sp := &spooled{file: f}
	defer func() {
		if err != nil {
			sp.Close()
		}
	}()
	limited := &limitReader{r: r, left: maxBytes}
	tr := tar.NewReader(limited)
	tw := tar.NewWriter(f)
	h := sha256.New()
	var dockerfileBody []byte
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if limited.over {
				return nil, tooLarge(maxBytes)
			}
			return nil, core.Invalidf("context", "the build context is not a valid tar stream: %v", err)
		}
		// "./a/b/" and "a/b" are the same entry; "../a" and "/a" leave.
		given := strings.TrimSuffix(strings.TrimPrefix(hdr.Name, "./"), "/")
		name := strings.TrimPrefix(path.Clean("/"+given), "/")
		if given != name && given != "." && given != "" {
			return nil, core.Invalidf("context", "the build context has an entry %q outside the context: names must be relative, without ..", truncate(hdr.Name, 80))
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			continue // directories come with their files
		case tar.TypeReg:
			if name == "" {
				return nil, core.Invalidf("context", "the build context has a file without a name")
			}
		default:
			return nil, core.Invalidf("context", "the build context entry %q is not a regular file or a directory", truncate(name, 80))
		}
		if _, added := extra[name]; added {
			continue // Wisp's own file wins
		}
		exec := hdr.Mode&0o111 != 0
		var body io.Reader = tr
		var keep bytes.Buffer
		if name == dockerfile {
			body = io.TeeReader(tr, &keep)
		}
		if err := addEntry(tw, h, name, exec, body, hdr.Size); err != nil {
			if limited.over {
				return nil, tooLarge(maxBytes)
			}
			return nil, core.Invalidf("context", "the build context entry %q is cut short: %v", truncate(name, 80), err)
		}
		if name == dockerfile {
			dockerfileBody = keep.Bytes()
		}
		sp.files++
		sp.size += hdr.Size
	}
	if dockerfileBody == nil {
		return nil, core.Invalidf("dockerfile", "the build context has no %s; wisp deploy generates one for the go, node, python and stdio runtimes, or add your own", dockerfile)
	}
	for _, name := range slices.Sorted(maps.Keys(extra)) {
		b := extra[name]
		if err := addEntry(tw, h, name, true, strings.NewReader(string(b)), int64(len(b))); err != nil {
			return nil, fmt.Errorf("spool the build context: %w", err)
		}
	}
	fmt.Fprintf(h, "dockerfile\x00%s\x00", dockerfile)
	sp.digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	all := maps.Clone(labels)
	if all == nil {
		all = map[string]string{}
	}
	all[LabelSourceDigest] = sp.digest
	var df bytes.Buffer
	df.Write(dockerfileBody)
	df.WriteString("\n\n# Added by wisp:\nLABEL")
	for _, k := range slices.Sorted(maps.Keys(all)) {
		fmt.Fprintf(&df, " %s=%s", k, strconv.Quote(all[k]))
	}
	df.WriteString("\n")
	if err := tw.WriteHeader(&tar.Header{Name: builtDockerfile, Mode: 0o644, Size: int64(df.Len()), Format: tar.FormatPAX}); err != nil {
		return nil, fmt.Errorf("spool the build context: %w", err)
	}
	if _, err := tw.Write(df.Bytes()); err != nil {
		return nil, fmt.Errorf("spool the build context: %w", err)
	}
	sp.dockerfile = builtDockerfile
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("spool the build context: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("spool the build context: %w", err)
	}
	return sp, nil
}

// builtDockerfile is where the Dockerfile with Wisp's labels goes.
const builtDockerfile = ".wisp/Dockerfile.labelled"

// addEntry writes one file to tw and to the digest.
func addEntry(tw *tar.Writer, h hash.Hash, name string, exec bool, r io.Reader, size int64) error {
	mode := int64(0o644)
	if exec {
		mode = 0o755
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: size, Format: tar.FormatPAX}); err != nil {
		return err
	}
	fmt.Fprintf(h, "%s\x00%d\x00%t\x00", name, size, exec)
	n, err := io.Copy(io.MultiWriter(tw, h), r)
	if err == nil && n != size {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func tooLarge(maxBytes int64) error {
	return core.TooLargef("the build context is over this server's limit of %s: leave out what the image does not need with a .wispignore (or .dockerignore), or raise the limit with wisp serve --max-build-context", mib(maxBytes))
}

// limitReader fails once more than left bytes are read, and says so.
type limitReader struct {
	r    io.Reader
	left int64
	over bool
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// One byte more tells a stream that ends exactly at the limit
		// from one that goes on.
		var one [1]byte
		n, err := l.r.Read(one[:])
		if n > 0 {
			l.over = true
			return 0, errors.New("over the limit")
		}
		return 0, err
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
