package kube_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wisp-run/wisp/internal/runtime"
	"github.com/wisp-run/wisp/internal/runtime/kube"
	"github.com/wisp-run/wisp/internal/runtime/kube/kubetest"
	"github.com/wisp-run/wisp/internal/runtime/runtimetest"
)

// TestKubeConformance runs the runtime suite on the real test cluster, with the
// greeter pushed to the cluster's loopback registry.
func TestKubeConformance(t *testing.T) {
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

// TestKubeStartFailures: an image that is not in the registry, a process that
// exits, a pod that cannot be scheduled: each fails WaitReady within
// seconds with the cause, and nothing is left after Stop.
func TestKubeStartFailures(t *testing.T) {
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

// TestKubeColdStart measures scale from zero to ready on the real cluster, and
// how long after the process began to listen (its first log line) the
// instance was ready: the adapter's own probe sees it within a few
// probe intervals, where the kubelet's one-second probe period alone
// would take up to a second.
func TestKubeColdStart(t *testing.T) {
	env := kubetest.Skip(t)
	ns := kubetest.Namespace(t, env)
	ref := env.Registry + "/wisp-greeter:test"
	pinned := kubetest.MustPushGoImage(t, "./testdata/greeter", ref, 8080)
	rt, err := kube.Open(t.Context(), kube.Config{Kubeconfig: env.Kubeconfig, Namespace: ns, Owner: "coldstart", StopGrace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	for i, delay := range []string{"0", "0", "0", "300", "300"} {
		spec := runtime.InstanceSpec{ID: runtimetest.NewID("cold"), Service: "cold", VersionID: 1, VersionNumber: 1,
			Image: pinned, ImageRef: ref, Port: 8080, Env: []string{"START_DELAY_MS=" + delay}}
		if delay != "0" {
			spec.VersionID, spec.VersionNumber = 2, 2
		}
		began := time.Now()
		in, err := rt.Start(t.Context(), spec)
		if err != nil {
			t.Fatal(err)
		}
		started := time.Since(began)
		if _, err := rt.WaitReady(t.Context(), spec.ID); err != nil {
			t.Fatal(err)
		}
		ready := time.Now()
		body := runtimetest.WaitServing(t, in.Addr, 5*time.Second)
		served := time.Since(began)
		lines := func() []runtime.LogLine {
			r, err := rt.Logs(t.Context(), spec.ID, runtime.LogOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			var out []runtime.LogLine
			for l, err := r.Next(); err == nil; l, err = r.Next() {
				out = append(out, l)
			}
			return out
		}()
		listening := time.Time{}
		for _, l := range lines {
			if strings.Contains(l.Text, "listening") {
				listening = l.Time
			}
		}
		t.Logf("cold start %d (start delay %sms): Start %s, ready %s, first answer %s (%q); ready %s after the process listened",
			i, delay, started.Round(time.Millisecond), ready.Sub(began).Round(time.Millisecond), served.Round(time.Millisecond),
			strings.TrimSpace(body), ready.Sub(listening).Round(time.Millisecond))
		if !listening.IsZero() && ready.Sub(listening) > 500*time.Millisecond {
			t.Errorf("ready %s after the process listened, want well under the kubelet's probe period", ready.Sub(listening))
		}
		if err := rt.Stop(t.Context(), spec.ID, time.Second); err != nil {
			t.Fatal(err)
		}
	}
}

// TestKubeScaleUpAndDown on the real ReplicaSet controller: starts at once
// claim different pods; stops at once remove exactly their pods (each is
// released from the ReplicaSet before the replicas drop), leaving the busy
// one alone; no pod is left unclaimed.
func TestKubeScaleUpAndDown(t *testing.T) {
	env := kubetest.Skip(t)
	ns := kubetest.Namespace(t, env)
	ref := env.Registry + "/wisp-greeter:test"
	pinned := kubetest.MustPushGoImage(t, "./testdata/greeter", ref, 8080)
	rt, err := kube.Open(t.Context(), kube.Config{Kubeconfig: env.Kubeconfig, Namespace: ns, Owner: "scale", StopGrace: time.Second, Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	const n = 6
	ins := make([]runtime.Instance, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	began := time.Now()
	for i := range n {
		wg.Go(func() {
			spec := runtime.InstanceSpec{ID: runtimetest.NewID("scale"), Service: "scale", VersionID: 1, VersionNumber: 1,
				Image: pinned, ImageRef: ref, Port: 8080}
			if ins[i], errs[i] = rt.Start(t.Context(), spec); errs[i] == nil {
				ins[i], errs[i] = rt.WaitReady(t.Context(), spec.ID)
			}
		})
	}
	wg.Wait()
	t.Logf("%d instances ready in %s", n, time.Since(began).Round(time.Millisecond))
	pods := map[string]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if pods[ins[i].ContainerID] {
			t.Fatalf("two instances share pod %s", ins[i].ContainerID)
		}
		pods[ins[i].ContainerID] = true
	}
	began = time.Now()
	for _, in := range ins[1:] {
		wg.Go(func() {
			if err := rt.Stop(t.Context(), in.ID, time.Second); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	t.Logf("%d instances stopped in %s", n-1, time.Since(began).Round(time.Millisecond))
	list, err := rt.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != ins[0].ID || list[0].ContainerID != ins[0].ContainerID {
		t.Fatalf("after the stops: %+v, want only %s on its own pod %s", list, ins[0].ID, ins[0].ContainerID)
	}
	cs, err := env.Client()
	if err != nil {
		t.Fatal(err)
	}
	pl, err := cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pl.Items {
		if p.DeletionTimestamp == nil && p.Name != ins[0].ContainerID {
			t.Errorf("pod %s (instance %q) is left", p.Name, p.Labels[runtime.LabelInstance])
		}
	}
	if err := rt.Stop(t.Context(), ins[0].ID, time.Second); err != nil {
		t.Fatal(err)
	}
	d, err := cs.AppsV1().Deployments(ns).Get(t.Context(), "scale-v1", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the Deployment after the last stop: %v; want it kept at 0", err)
	}
	if *d.Spec.Replicas != 0 {
		t.Fatalf("the Deployment after the last stop has %d replicas, want 0", *d.Spec.Replicas)
	}
}
