package build

import (
	"bytes"
	"fmt"
	"testing"
)

// TestBuildLogKeepsTheTail writes five times the kept size, line by line,
// while a follower reads from its offset, and checks what is kept and what
// the follower saw.
func TestBuildLogKeepsTheTail(t *testing.T) {
	l := newBuildLog()
	var all bytes.Buffer
	var followed bytes.Buffer
	var off int64
	follow := func() {
		data, next, _, _ := l.read(off)
		followed.Write(data)
		off = next
	}
	for i := 0; all.Len() < 5*maxLogBytes; i++ {
		line := fmt.Sprintf("step %07d: %s", i, bytes.Repeat([]byte{'x'}, 48))
		l.line(line)
		all.WriteString(line + "\n")
		if i%1000 == 0 {
			follow() // a follower that keeps up sees every byte
		}
	}
	follow()
	l.finish()
	if followed.Len() != all.Len() || !bytes.Equal(followed.Bytes(), all.Bytes()) {
		t.Fatalf("a follower that kept up got %d bytes, want all %d", followed.Len(), all.Len())
	}
	got := l.bytes()
	want := all.Bytes()[all.Len()-maxLogBytes:]
	if !bytes.Equal(got, want) {
		t.Fatalf("kept %d bytes ending %q, want the last %d ending %q", len(got), got[max(0, len(got)-20):], len(want), want[len(want)-20:])
	}
	// A late reader starts at the oldest byte kept, and learns it is done.
	data, next, done, _ := l.read(0)
	if !done || next != int64(all.Len()) || len(data) < maxLogBytes || len(data) > 2*maxLogBytes ||
		!bytes.HasSuffix(all.Bytes(), data) {
		t.Fatalf("late read: %d bytes, next %d, done %v; want 1–2 MiB of the tail, next %d, done", len(data), next, done, all.Len())
	}
}
