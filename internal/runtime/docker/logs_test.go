package docker

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wisp-run/wisp/internal/runtime"
)

func frame(stream byte, s string) []byte {
	hdr := make([]byte, 8)
	hdr[0] = stream
	binary.BigEndian.PutUint32(hdr[4:], uint32(len(s)))
	return append(hdr, s...)
}

func TestLogReader(t *testing.T) {
	ts := "2026-12-01T10:00:00.123456789Z"
	at, _ := time.Parse(time.RFC3339Nano, ts)
	cases := []struct {
		name    string
		frames  [][]byte
		want    []runtime.LogLine
		wantErr string // "" means io.EOF
	}{
		{"one line each", [][]byte{frame(1, ts+" hello\n"), frame(2, ts+" oops\n")},
			[]runtime.LogLine{{Time: at, Stream: runtime.Stdout, Text: "hello"}, {Time: at, Stream: runtime.Stderr, Text: "oops"}}, ""},
		{"a line split over frames, another stream between", [][]byte{frame(1, ts+" hel"), frame(2, ts+" err\n"), frame(1, "lo\n")},
			[]runtime.LogLine{{Time: at, Stream: runtime.Stderr, Text: "err"}, {Time: at, Stream: runtime.Stdout, Text: "hello"}}, ""},
		{"two lines in a frame, CRLF", [][]byte{frame(1, ts+" a\r\n"+ts+" b\n")},
			[]runtime.LogLine{{Time: at, Stream: runtime.Stdout, Text: "a"}, {Time: at, Stream: runtime.Stdout, Text: "b"}}, ""},
		{"a last line without newline", [][]byte{frame(1, ts+" tail")},
			[]runtime.LogLine{{Time: at, Stream: runtime.Stdout, Text: "tail"}}, ""},
		{"no timestamp", [][]byte{frame(1, "plain text\n")},
			[]runtime.LogLine{{Time: time.Time{}, Stream: runtime.Stdout, Text: "plain text"}}, ""},
		{"malformed header", [][]byte{frame(7, "x\n")}, nil, "malformed log stream"},
		{"cut mid-frame", [][]byte{frame(1, ts+" whole\n"), frame(1, ts+" cut\n")[:12]},
			[]runtime.LogLine{{Time: at, Stream: runtime.Stdout, Text: "whole"}}, ""},
	}
	for _, tc := range cases {
		for _, batch := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/batch=%v", tc.name, batch), func(t *testing.T) {
				r := newLogReader(io.NopCloser(bytes.NewReader(bytes.Join(tc.frames, nil))), 0)
				var got []runtime.LogLine
				var err error
				for batch {
					if got, err = r.NextBatch(got); err != nil {
						break
					}
				}
				for !batch {
					var l runtime.LogLine
					if l, err = r.Next(); err != nil {
						break
					}
					got = append(got, l)
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("lines (-want +got):\n%s", diff)
				}
				switch {
				case tc.wantErr == "" && !errors.Is(err, io.EOF):
					t.Errorf("end: %v, want io.EOF", err)
				case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
					t.Errorf("end: %v, want an error with %q", err, tc.wantErr)
				}
			})
		}
	}
}

// countingReader counts the reads made of the engine's stream.
type countingReader struct {
	io.Reader
	reads atomic.Int32
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.Reader.Read(p)
}

// TestLogReaderCoalesces: with a coalesce interval, lines written one by
// one every 2 ms are read in a few bulk reads, all of them, in order; and
// Close ends a reader waiting out its interval at once.
func TestLogReaderCoalesces(t *testing.T) {
	// A kernel pipe buffers what is written, as the engine's socket does.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	cr := &countingReader{Reader: pr}
	r := newLogReader(struct {
		io.Reader
		io.Closer
	}{cr, pr}, 50*time.Millisecond)
	const n = 100
	go func() {
		for i := range n {
			_, _ = pw.Write(frame(1, fmt.Sprintf("line %d\n", i)))
			time.Sleep(2 * time.Millisecond)
		}
		_ = pw.Close()
	}()
	var got []runtime.LogLine
	for {
		if got, err = r.NextBatch(got); err != nil {
			break
		}
	}
	if !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v, want io.EOF", err)
	}
	if len(got) != n {
		t.Fatalf("%d lines, want %d", len(got), n)
	}
	for i, l := range got {
		if want := fmt.Sprintf("line %d", i); l.Text != want {
			t.Fatalf("line %d is %q, want %q", i, l.Text, want)
		}
	}
	// 100 writes over at least 200 ms: uncoalesced that is a read each;
	// at most one read per 50 ms (plus the first and the end) is ~6.
	if reads := cr.reads.Load(); reads > n/4 {
		t.Errorf("%d reads of the stream for %d lines, want far fewer", reads, n)
	}

	// Close during the wait.
	pr2, pw2 := io.Pipe()
	defer pw2.Close()
	r2 := newLogReader(pr2, time.Hour)
	go func() { _, _ = pw2.Write(frame(1, "first\n")) }()
	if _, err := r2.Next(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := r2.Next(); done <- err }()
	time.Sleep(20 * time.Millisecond)
	_ = r2.Close()
	select {
	case err := <-done:
		if !errors.Is(err, io.EOF) {
			t.Errorf("after Close: %v, want io.EOF", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a reader waiting out its coalesce interval")
	}
}
