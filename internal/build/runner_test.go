package build

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime"
	"github.com/wisp-run/wisp/internal/store/sqlite"
)

// fakeBuilder builds every image at once, as sha256:built.
type fakeBuilder struct{}

func (fakeBuilder) Build(context.Context, runtime.BuildRequest, func(string)) (string, error) {
	return "sha256:built", nil
}
func (fakeBuilder) FindImage(context.Context, map[string]string) (string, bool, error) {
	return "", false, nil
}
func (fakeBuilder) InspectImage(context.Context, string) (runtime.ImageInfo, error) {
	return runtime.ImageInfo{}, core.NotFoundf("no such image")
}
func (fakeBuilder) TagImage(context.Context, string, string) error { return nil }

// TestRunnerSyncs: a build waits for its version to be live (Sync) after it
// deployed it and before it is marked succeeded; a failed Sync is reported
// in the build's output and the build still succeeds, since the version
// exists.
func TestRunnerSyncs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		syncErr error
		wantLog string
	}{
		{"sync succeeds", nil, "wisp: v1 gets all traffic"},
		{"sync fails", errors.New("router is behind"), "wisp: v1 is not live in the router yet: router is behind"},
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
			type seen struct {
				version error
				status  core.BuildStatus
			}
			calls := make(chan seen, 2)
			r, err := NewRunner(t.Context(), RunnerConfig{Builder: fakeBuilder{}, Store: st, Logger: slog.New(slog.DiscardHandler),
				Sync: func(ctx context.Context) error {
					_, verr := st.GetVersion(ctx, "hello", 1)
					builds, err := st.ListBuilds(ctx, "hello", 1)
					if err != nil || len(builds) != 1 {
						t.Errorf("ListBuilds in Sync: %+v, %v", builds, err)
						return err
					}
					calls <- seen{version: verr, status: builds[0].Status}
					return tc.syncErr
				}})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = r.Close(context.WithoutCancel(t.Context())) }()
			b, err := r.Submit(t.Context(), core.BuildRequest{Service: "hello"}, tarOf(t, entry{name: "Dockerfile", body: "FROM scratch\n"}))
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if err := r.Logs(ctx, b.ID, true, &out, func() {}); err != nil {
				t.Fatal(err)
			}
			select {
			case s := <-calls:
				if s.version != nil {
					t.Fatalf("Sync ran before the version existed: %v", s.version)
				}
				if s.status.Done() {
					t.Fatalf("Sync ran after the build was marked %s", s.status)
				}
			default:
				t.Fatalf("the build never called Sync; output:\n%s", out.String())
			}
			if len(calls) != 0 {
				t.Fatal("Sync called more than once")
			}
			got, err := r.Get(t.Context(), b.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != core.BuildSucceeded || !strings.Contains(out.String(), tc.wantLog) {
				t.Fatalf("build %s; output:\n%s\nwant it to contain %q", got.Status, out.String(), tc.wantLog)
			}
		})
	}
}

// pushingBuilder records what it tags and pushes.
type pushingBuilder struct {
	fakeBuilder
	tagged, pushed []string
	err            error
}

func (p *pushingBuilder) TagImage(_ context.Context, _, ref string) error {
	p.tagged = append(p.tagged, ref)
	return nil
}

func (p *pushingBuilder) Push(_ context.Context, ref string, _ runtime.RegistryAuth, progress func(string)) (string, error) {
	p.pushed = append(p.pushed, ref)
	if p.err != nil {
		return "", p.err
	}
	progress("pushed")
	return ref[:strings.LastIndex(ref, ":")] + "@sha256:pushed", nil
}

// TestRunnerPushes: with a registry, the version pins the pushed digest and
// names the registry's tag; a failed push creates no version.
func TestRunnerPushes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pushErr error
	}{{"push succeeds", nil}, {"push fails", core.Invalidf("registry", "push: unauthorized")}} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "wisp.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if _, err := st.CreateService(t.Context(), core.Service{Name: "hello", Policy: core.DefaultPolicy()}); err != nil {
				t.Fatal(err)
			}
			pb := &pushingBuilder{err: tc.pushErr}
			r, err := NewRunner(t.Context(), RunnerConfig{Builder: pb, Store: st, Logger: slog.New(slog.DiscardHandler), Registry: "reg.test:5000/"})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = r.Close(context.WithoutCancel(t.Context())) }()
			b, err := r.Submit(t.Context(), core.BuildRequest{Service: "hello"}, tarOf(t, entry{name: "Dockerfile", body: "FROM scratch\n"}))
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if err := r.Logs(ctx, b.ID, true, &out, func() {}); err != nil {
				t.Fatal(err)
			}
			got, err := r.Get(t.Context(), b.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(pb.pushed) != 1 || !strings.HasPrefix(pb.pushed[0], "reg.test:5000/hello:") || pb.tagged[0] != pb.pushed[0] {
				t.Fatalf("tagged %v, pushed %v; want one push of reg.test:5000/hello:<tag>", pb.tagged, pb.pushed)
			}
			v, verr := st.GetVersion(t.Context(), "hello", 1)
			if tc.pushErr != nil {
				if got.Status != core.BuildFailed || !errors.Is(verr, core.ErrNotFound) || !strings.Contains(out.String(), "unauthorized") {
					t.Fatalf("failed push: build %s, version err %v; output:\n%s", got.Status, verr, out.String())
				}
				return
			}
			if got.Status != core.BuildSucceeded || verr != nil {
				t.Fatalf("build %s, version err %v; output:\n%s", got.Status, verr, out.String())
			}
			if v.ImageID != "reg.test:5000/hello@sha256:pushed" || v.Image != pb.pushed[0] {
				t.Fatalf("version image %q id %q; want the pushed tag and digest", v.Image, v.ImageID)
			}
		})
	}
}
