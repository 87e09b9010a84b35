package logs

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/wisp-run/wisp/internal/core"
)

// scanSegment calls fn with each whole entry of the segment at path from
// byte off on, and returns the offset after the last whole line read (a
// line the writer has not finished is left for the next read). A segment
// removed meanwhile reads as empty.
func scanSegment(path string, off int64, fn func(core.LogEntry) error) (int64, error) {
	f, err := os.Open(path) //nolint:gosec // G304: a segment path under the log dir, made by this package
	if errors.Is(err, os.ErrNotExist) {
		return off, nil
	}
	if err != nil {
		return off, fmt.Errorf("logs: %w", err)
	}
	defer f.Close()
	if off > 0 {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return off, fmt.Errorf("logs: %w", err)
		}
	}
	r := bufio.NewReaderSize(f, 64<<10)
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: read it whole.
			rest, err2 := r.ReadBytes('\n')
			line = append(append([]byte(nil), line...), rest...)
			err = err2
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return off, nil
			}
			return off, fmt.Errorf("logs: read %s: %w", path, err)
		}
		off += int64(len(line))
		var e core.LogEntry
		if json.Unmarshal(line, &e) != nil {
			continue
		}
		if err := fn(e); err != nil {
			return off, err
		}
	}
}

// truncateTorn cuts the segment at path after its last newline: a crash
// may have left half a line.
func truncateTorn(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0) //nolint:gosec // G304: a segment path under the log dir
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	if size == 0 {
		return nil
	}
	buf := make([]byte, 64<<10)
	end := size
	for end > 0 {
		n := min(int64(len(buf)), end)
		if _, err := f.ReadAt(buf[:n], end-n); err != nil {
			return err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			keep := end - n + int64(i) + 1
			if keep == size {
				return nil
			}
			return f.Truncate(keep)
		}
		end -= n
	}
	return f.Truncate(0)
}

// lastEntry reads the last whole entry of the segment at path.
func lastEntry(path string) (core.LogEntry, bool, error) {
	f, err := os.Open(path) //nolint:gosec // G304: a segment path under the log dir, made by this package
	if err != nil {
		return core.LogEntry{}, false, fmt.Errorf("logs: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return core.LogEntry{}, false, err
	}
	n := min(fi.Size(), 256<<10)
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, fi.Size()-n); err != nil && !errors.Is(err, io.EOF) {
		return core.LogEntry{}, false, err
	}
	lines := bytes.Split(bytes.TrimRight(buf, "\n"), []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		var e core.LogEntry
		if json.Unmarshal(lines[i], &e) == nil {
			return e, true, nil
		}
	}
	return core.LogEntry{}, false, nil
}

// scanBackward calls fn with the whole entries of the segment at path,
// newest first, reading it from its end in chunks, until fn returns true.
// It returns the offset after the last whole line (where a forward read
// goes on). A segment removed meanwhile reads as empty.
func scanBackward(path string, fn func(core.LogEntry) bool) (int64, error) {
	f, err := os.Open(path) //nolint:gosec // G304: a segment path under the log dir, made by this package
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("logs: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("logs: %w", err)
	}
	const chunk = 256 << 10
	pos, end := fi.Size(), int64(-1)
	var carry []byte // the start of pos's line onwards, not yet read
	for pos > 0 {
		n := min(chunk, pos)
		pos -= n
		buf := make([]byte, n, int(n)+len(carry))
		if _, err := f.ReadAt(buf, pos); err != nil && !errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("logs: read %s: %w", path, err)
		}
		buf = append(buf, carry...)
		if end < 0 {
			i := bytes.LastIndexByte(buf, '\n')
			if i < 0 {
				carry = buf
				continue
			}
			end = pos + int64(i) + 1
			buf = buf[:i+1]
		}
		lines := buf
		carry = nil
		if pos > 0 {
			// The part before the first newline ends a line that starts
			// in an earlier chunk.
			j := bytes.IndexByte(buf, '\n')
			carry, lines = buf[:j+1], buf[j+1:]
		}
		for len(lines) > 0 {
			k := bytes.LastIndexByte(lines[:len(lines)-1], '\n')
			line := lines[k+1:]
			lines = lines[:k+1]
			var e core.LogEntry
			if json.Unmarshal(line, &e) != nil {
				continue
			}
			if fn(e) {
				return end, nil
			}
		}
	}
	return max(end, 0), nil
}
