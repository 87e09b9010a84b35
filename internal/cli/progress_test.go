package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// fakeClock advances by step on every reading.
func fakeClock(step time.Duration) func() time.Time {
	t := time.Unix(0, 0)
	return func() time.Time { t = t.Add(step); return t }
}

func TestBuildProgressPlain(t *testing.T) {
	var out bytes.Buffer
	p := newBuildProgress(&out, false, false)
	p.now = fakeClock(time.Second)
	for _, l := range []string{
		"wisp: build 3 of hello: 2 files, 1.0 KiB, sha256:x",
		"Step 1/2 : FROM golang:1.26",
		" ---> 1234",
		"Step 2/2 : RUN go build",
		"compiling…",
		"wisp: created version v1 of hello",
	} {
		p.Line(l)
	}
	p.Finish(true)
	want := "wisp: build 3 of hello: 2 files, 1.0 KiB, sha256:x\n" +
		"[1/2] FROM golang:1.26\n[1/2] done in 1.0s\n" +
		"[2/2] RUN go build\n[2/2] done in 1.0s\n" +
		"wisp: created version v1 of hello\n"
	if out.String() != want {
		t.Fatalf("plain progress:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestBuildProgressFailureAndVerbose(t *testing.T) {
	var out bytes.Buffer
	p := newBuildProgress(&out, false, true)
	p.now = fakeClock(time.Second)
	for _, l := range []string{"Step 1/1 : RUN make", "make: *** error", "wisp: build 4 failed: the build failed: boom", "its last output:", "Step 1/1 : RUN make"} {
		p.Line(l)
	}
	p.Finish(false)
	got := out.String()
	for _, want := range []string{"[1/1] RUN make\n", "    make: *** error\n", "[1/1] failed after 1.0s\n", "    its last output:\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("verbose progress lacks %q:\n%s", want, got)
		}
	}
	if strings.Count(got, "[1/1] RUN make") != 1 {
		t.Errorf("the error's copy of the steps must not restart them:\n%s", got)
	}
}

func TestBuildProgressTerminal(t *testing.T) {
	var out bytes.Buffer
	p := newBuildProgress(&out, true, false)
	p.mu.Lock()
	p.now = fakeClock(500 * time.Millisecond)
	p.mu.Unlock()
	p.Line("Step 1/2 : COPY . .")
	p.Line("Step 2/2 : CMD [\"x\"]")
	p.Line("wisp: created version v2 of hello")
	p.Finish(true)
	got := out.String()
	for _, want := range []string{"\r\033[K✓ [1/2] COPY . .  1.0s\n", "✓ [2/2] CMD [\"x\"]", "wisp: created version v2 of hello\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("terminal progress lacks %q:\n%q", want, got)
		}
	}
}
