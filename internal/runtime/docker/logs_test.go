package docker

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
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
		t.Run(tc.name, func(t *testing.T) {
			r := newLogReader(io.NopCloser(bytes.NewReader(bytes.Join(tc.frames, nil))))
			var got []runtime.LogLine
			var err error
			for {
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
