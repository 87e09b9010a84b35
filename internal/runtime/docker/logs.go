package docker

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/wisp-run/wisp/internal/runtime"
)

// logReader turns the engine's multiplexed log stream into lines. Without a
// TTY (Wisp never asks for one) the stream is a sequence of frames: an
// 8-byte header (stream: 1 stdout, 2 stderr; three zero bytes; a big-endian
// uint32 length) and that many bytes of output. With timestamps on, every
// line the engine recorded starts with an RFC 3339 time and a space. A
// frame may end mid-line and the next frame of the same stream continue it,
// so each stream keeps its partial line.
//
// With a coalesce interval the reader reads the engine's stream at most
// once per interval: lines wait in the socket meanwhile, and one read
// brings them all. At 500 lines/s an instance that is 25 lines a read
// instead of one, and 40 wake-ups a second instead of 500.
type logReader struct {
	rc       io.ReadCloser
	br       *bufio.Reader
	partial  [3]strings.Builder // by stream byte
	ready    []runtime.LogLine
	err      error
	closed   atomic.Bool
	closedc  chan struct{}
	coalesce time.Duration
	lastRead time.Time
}

func newLogReader(rc io.ReadCloser, coalesce time.Duration) *logReader {
	return &logReader{rc: rc, br: bufio.NewReaderSize(rc, 32<<10), closedc: make(chan struct{}), coalesce: coalesce}
}

// maxLogFrame bounds one frame: the engine splits output into frames of at
// most 16 KiB, so anything far larger means the stream is not what we think.
const maxLogFrame = 1 << 20

func (r *logReader) Next() (runtime.LogLine, error) {
	for len(r.ready) == 0 {
		if r.err != nil {
			return runtime.LogLine{}, r.err
		}
		r.readFrame()
	}
	l := r.ready[0]
	r.ready = r.ready[1:]
	return l, nil
}

// NextBatch implements runtime.LogBatchReader: it reads one frame (waiting
// for it), then every further frame already buffered whole.
func (r *logReader) NextBatch(dst []runtime.LogLine) ([]runtime.LogLine, error) {
	for len(r.ready) == 0 && r.err == nil {
		r.readFrame()
	}
	for r.err == nil && r.frameBuffered() {
		r.readFrame()
	}
	n := len(r.ready)
	dst = append(dst, r.ready...)
	r.ready = r.ready[:0]
	if n == 0 && r.err != nil {
		return dst, r.err
	}
	return dst, nil
}

// frameBuffered reports whether a whole frame is in the buffer.
func (r *logReader) frameBuffered() bool {
	if r.br.Buffered() < 8 {
		return false
	}
	hdr, err := r.br.Peek(8)
	if err != nil {
		return false
	}
	size := int64(binary.BigEndian.Uint32(hdr[4:]))
	return int64(r.br.Buffered()) >= 8+size
}

// pace waits, before a read from the engine, until a coalesce interval has
// passed since the last one, so that lines gather in the socket.
func (r *logReader) pace() {
	if r.coalesce <= 0 || r.br.Buffered() > 0 {
		return
	}
	if wait := r.coalesce - time.Since(r.lastRead); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-r.closedc:
			t.Stop()
		}
	}
	r.lastRead = time.Now()
}

func (r *logReader) readFrame() {
	r.pace()
	var hdr [8]byte
	if _, err := io.ReadFull(r.br, hdr[:]); err != nil {
		r.finish(err)
		return
	}
	stream := hdr[0]
	size := binary.BigEndian.Uint32(hdr[4:])
	if stream != 1 && stream != 2 || size > maxLogFrame {
		r.finish(fmt.Errorf("docker: malformed log stream (frame header %x)", hdr))
		return
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(r.br, buf); err != nil {
		r.finish(err)
		return
	}
	p := &r.partial[stream]
	for len(buf) > 0 {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			p.Write(buf)
			return
		}
		p.Write(buf[:i])
		r.ready = append(r.ready, parseLogLine(streamName(stream), p.String()))
		p.Reset()
		buf = buf[i+1:]
	}
}

// finish ends the stream: what is left of a partial line is a line, and a
// clean end of the engine's stream is io.EOF.
func (r *logReader) finish(err error) {
	for s := byte(1); s <= 2; s++ {
		if p := &r.partial[s]; p.Len() > 0 {
			r.ready = append(r.ready, parseLogLine(streamName(s), p.String()))
			p.Reset()
		}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || r.closed.Load() {
		err = io.EOF // the engine's stream ended, or we closed it
	}
	r.err = err
}

func streamName(b byte) string {
	if b == 2 {
		return runtime.Stderr
	}
	return runtime.Stdout
}

// parseLogLine splits the engine's timestamp from the text.
func parseLogLine(stream, s string) runtime.LogLine {
	l := runtime.LogLine{Stream: stream, Text: s}
	if ts, text, ok := strings.Cut(s, " "); ok {
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			l.Time, l.Text = t, text
		}
	}
	l.Text = strings.TrimSuffix(l.Text, "\r")
	return l
}

// Close implements runtime.LogReader.
func (r *logReader) Close() error {
	if r.closed.CompareAndSwap(false, true) {
		close(r.closedc)
	}
	return r.rc.Close()
}
