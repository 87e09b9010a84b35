package kube_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/runtime"
	"github.com/wisp-run/wisp/internal/runtime/kube"
	"github.com/wisp-run/wisp/internal/runtime/kube/kubetest"
	"github.com/wisp-run/wisp/internal/runtime/runtimetest"
)

// TestConformance runs the runtime suite on the real test cluster, with the
// greeter pushed to the cluster's loopback registry.
func TestConformance(t *testing.T) {
	env := kubetest.Skip(t)
	ns := kubetest.Namespace(t, env)
	ref := env.Registry + "/wisp-greeter:test"
	kubetest.MustPushGoImage(t, "./testdata/greeter", ref, 8080)
	rt, err := kube.Open(t.Context(), kube.Config{Kubeconfig: env.Kubeconfig, Namespace: ns, Owner: "conformance", StopGrace: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	runtimetest.Run(t, rt, runtimetest.Image{Ref: ref, Port: 8080})
}

// TestStartFailures: an image that is not in the registry, a process that
// exits, a pod that cannot be scheduled: each fails WaitReady within
// seconds with the cause, and nothing is left after Stop.
func TestStartFailures(t *testing.T) {
	env := kubetest.Skip(t)
	ns := kubetest.Namespace(t, env)
	ref := env.Registry + "/wisp-greeter:test"
	pinned := kubetest.MustPushGoImage(t, "./testdata/greeter", ref, 8080)
	rt, err := kube.Open(t.Context(), kube.Config{Kubeconfig: env.Kubeconfig, Namespace: ns, Owner: "failures", StopGrace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	missing := env.Registry + "/wisp-greeter@sha256:" + strings.Repeat("1", 64)
	for i, tc := range []struct {
		name string
		edit func(*runtime.InstanceSpec)
		want string
	}{
		{"missing image", func(s *runtime.InstanceSpec) { s.Image = missing }, "cannot be pulled"},
		{"exits", func(s *runtime.InstanceSpec) { s.Env = append(s.Env, "EXIT_CODE=3") }, "exited with code 3"},
		{"unschedulable", func(s *runtime.InstanceSpec) { s.MemoryLimit = 1 << 50 }, "cannot be scheduled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := runtime.InstanceSpec{ID: runtimetest.NewID("fail"), Service: "fail", VersionID: int64(100 + i), VersionNumber: i + 1,
				Image: pinned, ImageRef: ref, Port: 8080}
			tc.edit(&spec)
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			began := time.Now()
			_, err := rt.Start(ctx, spec)
			if err == nil {
				_, err = rt.WaitReady(ctx, spec.ID)
			}
			took := time.Since(began)
			t.Logf("failed after %s: %v", took.Round(time.Millisecond), err)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			}
			if took > 10*time.Second {
				t.Errorf("the failure took %s to surface, want within 10s", took)
			}
			if err := rt.Stop(t.Context(), spec.ID, time.Second); err != nil {
				t.Fatal(err)
			}
			list, err := rt.List(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			for _, in := range list {
				if in.VersionID == spec.VersionID {
					t.Errorf("left behind: %+v", in)
				}
			}
			if err := rt.RemoveVersion(t.Context(), spec.VersionID); err != nil {
				t.Fatal(err)
			}
		})
	}
}
