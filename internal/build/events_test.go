package build

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime"
	"github.com/wisp-run/wisp/internal/store/sqlite"
)

type recorder struct {
	mu  sync.Mutex
	all []core.LogEntry
}

func (r *recorder) Append(e core.LogEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, e)
}

type failingBuilder struct{ fakeBuilder }

func (failingBuilder) Build(context.Context, runtime.BuildRequest, func(string)) (string, error) {
	return "", errors.New("step 2/3: exit code 1")
}

// TestBuildEvents: a build is build.started then build.finished with its
// result (and error), in its service's stream.
func TestBuildEvents(t *testing.T) {
	for _, tc := range []struct {
		name    string
		builder runtime.Builder
		result  string
		events  string
	}{
		// The first version gets all the traffic: that is a change too.
		{"succeeds", fakeBuilder{}, "succeeded", "build.started traffic.changed build.finished"},
		{"fails", failingBuilder{}, "failed", "build.started build.finished"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "wisp.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if _, err := st.CreateService(t.Context(), core.Service{Name: "hello", Policy: core.DefaultPolicy()}); err != nil {
				t.Fatal(err)
			}
			rec := &recorder{}
			r, err := NewRunner(t.Context(), RunnerConfig{Builder: tc.builder, Store: st, Logger: slog.New(slog.DiscardHandler), Events: rec})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = r.Close(context.WithoutCancel(t.Context())) }()
			b, err := r.Submit(t.Context(), core.BuildRequest{Service: "hello"}, tarOf(t, entry{name: "Dockerfile", body: "FROM scratch\n"}))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if err := r.Logs(ctx, b.ID, true, io.Discard, func() {}); err != nil {
				t.Fatal(err)
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			id := strconv.FormatInt(b.ID, 10)
			var names []string
			for _, e := range rec.all {
				names = append(names, e.Event)
				if e.Service != "hello" || e.Kind != core.LogPlatform || e.Fields["build"] != id {
					t.Errorf("event %+v, want of hello with build %s", e, id)
				}
			}
			if got := strings.Join(names, " "); got != tc.events {
				t.Fatalf("events %q, want %q", got, tc.events)
			}
			if tc.result == "succeeded" {
				if tr := rec.all[1]; tr.Fields["by"] != "build" || tr.Fields["traffic"] != "1=100" || tr.Fields["entry"] == "" {
					t.Errorf("traffic.changed %+v", tr)
				}
			}
			fin := rec.all[len(rec.all)-1]
			if fin.Fields["result"] != tc.result || (tc.result == "failed") != (fin.Fields["error"] != "") {
				t.Errorf("finished %+v, want result %s (and an error when it failed)", fin, tc.result)
			}
		})
	}
}
