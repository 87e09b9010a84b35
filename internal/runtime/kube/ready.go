package kube

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime"
)

// reclaimWindow is how long WaitReady waits for a pod to replace one that
// was deleted under a start (see WaitReady).
const reclaimWindow = 5 * time.Second

// WaitReady implements runtime.ReadinessWaiter. The instance is ready when
// the first of these says so: the pod's Ready condition, its endpoint in the
// Service's EndpointSlice, or the adapter's own probe of the pod's address
// (the readiness path over HTTP, else a TCP connect), every ProbeInterval
// from the moment the pod has an address. The kubelet probes once a second
// at most, and its first probe runs as soon as the container starts: a
// process that listens a moment later would wait a second for the next.
//
// What keeps the pod from becoming ready ends the wait at once with the
// cause (see podFailure). A pod deleted under a starting instance (by hand,
// or by its ReplicaSet, which ranks not-ready pods first when another
// instance is stopped) is replaced by the ReplicaSet; the instance claims
// the replacement, so a start survives another instance's stop.
func (k *Kube) WaitReady(ctx context.Context, id string) (runtime.Instance, error) {
	p := k.podOfInstance(id)
	if p == nil {
		return runtime.Instance{}, core.NotFoundf("instance %s not found", id)
	}
	vid, name := p.Labels[runtime.LabelVersionID], podDeployment(p)
	w := k.newFailureWatch()
	pr := &prober{interval: k.cfg.ProbeInterval, wake: k.changes.notify, probe: k.probe}
	defer pr.stop()
	var in runtime.Instance
	var lost time.Time // when the pod went, for the reclaim
	err := k.waitForTimed(ctx, func() (bool, time.Duration, error) {
		p := k.podOfInstance(id)
		if p == nil || p.DeletionTimestamp != nil {
			return k.reclaim(ctx, id, name, vid, &lost)
		}
		lost = time.Time{}
		if err := w.check(p); err != nil {
			return false, 0, fmt.Errorf("instance %s (pod %s): %w", id, p.Name, err)
		}
		addr := podAddr(p)
		if podReady(p) || k.endpointReady(p) || (addr != "" && pr.passed(addr)) {
			in = k.instanceOf(p)
			if !readyMark(p) {
				k.markReady(p.Name)
			}
			return true, 0, nil
		}
		if addr != "" {
			pr.start(ctx, addr, readinessPath(p))
		}
		return false, w.recheck(), nil
	})
	return in, err
}

// reclaim claims a replacement for instance id's pod, which went away while
// it started, unless this process is stopping the instance or no
// replacement comes within reclaimWindow.
func (k *Kube) reclaim(ctx context.Context, id, name, vid string, lost *time.Time) (bool, time.Duration, error) {
	if k.isStopping(id) {
		return false, 0, fmt.Errorf("instance %s is being stopped", id)
	}
	now := time.Now()
	if lost.IsZero() {
		*lost = now
		k.log.Info("the pod of a starting instance was deleted; claiming its replacement", "instance", id, "deployment", name)
	}
	left := reclaimWindow - now.Sub(*lost)
	if left <= 0 {
		return false, 0, fmt.Errorf("instance %s: its pod was deleted while it started, and no replacement came within %s", id, reclaimWindow)
	}
	patch, err := claimPatch(id)
	if err != nil {
		return false, 0, err
	}
	for _, p := range unclaimed(k.podsOfVersion(vid)) {
		if _, err := k.patchPod(ctx, p.Name, patch); err == nil {
			k.clearTombstone(id)
			return false, 0, nil // the next change shows the claimed pod
		}
	}
	return false, left, nil
}

// podDeployment is the name of the Deployment of pod p.
func podDeployment(p *corev1.Pod) string {
	return objectName(p.Labels[runtime.LabelService], p.Labels[runtime.LabelVersionNumber])
}

func (k *Kube) isStopping(id string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.stopping[id]
}

func (k *Kube) clearTombstone(id string) {
	k.mu.Lock()
	delete(k.gone, id)
	k.mu.Unlock()
}

// readinessPath is the HTTP path of the pod's readiness probe, or "".
func readinessPath(p *corev1.Pod) string {
	for _, c := range p.Spec.Containers {
		if c.Name == containerName && c.ReadinessProbe != nil && c.ReadinessProbe.HTTPGet != nil {
			return c.ReadinessProbe.HTTPGet.Path
		}
	}
	return ""
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// endpointReady reports whether pod p is a ready endpoint in an
// EndpointSlice of its version's Service.
func (k *Kube) endpointReady(p *corev1.Pod) bool {
	objs, _ := k.slices.GetIndexer().ByIndex(byService, podDeployment(p))
	for _, o := range objs {
		s, ok := o.(*discoveryv1.EndpointSlice)
		if !ok {
			continue
		}
		for _, e := range s.Endpoints {
			if e.TargetRef != nil && e.TargetRef.Name == p.Name && e.TargetRef.UID == p.UID &&
				e.Conditions.Ready != nil && *e.Conditions.Ready {
				return true
			}
		}
	}
	return false
}

// failureWatch turns a starting pod's status into the reason it cannot
// become ready. An unschedulable pod fails only after UnschedulableGrace:
// room can come free as other pods end.
type failureWatch struct {
	grace        time.Duration
	unschedSince time.Time
}

func (k *Kube) newFailureWatch() *failureWatch {
	return &failureWatch{grace: k.cfg.UnschedulableGrace}
}

func (w *failureWatch) check(p *corev1.Pod) error {
	if err := podFailure(p); err != nil {
		return err
	}
	msg, ok := unschedulable(p)
	if !ok {
		w.unschedSince = time.Time{}
		return nil
	}
	if w.unschedSince.IsZero() {
		w.unschedSince = time.Now()
	}
	if time.Since(w.unschedSince) >= w.grace {
		return fmt.Errorf("the pod cannot be scheduled: %s", msg)
	}
	return nil
}

// recheck is when to look again without a change: when the unschedulable
// grace ends.
func (w *failureWatch) recheck() time.Duration {
	if w.unschedSince.IsZero() {
		return 0
	}
	return max(w.grace-time.Since(w.unschedSince), time.Millisecond)
}

// unschedulable returns the scheduler's message for a pod it cannot place.
func unschedulable(p *corev1.Pod) (string, bool) {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return c.Message, true
		}
	}
	return "", false
}

// Waiting reasons of a container that cannot start, as the kubelet
// reports them.
var (
	pullFailures   = []string{"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "RegistryUnavailable", "SignatureValidationFailed"}
	createFailures = []string{"CreateContainerConfigError", "CreateContainerError", "RunContainerError", "PreStartHookError", "PostStartHookError"}
)

// podFailure is why a starting pod will not become ready, from its status
// alone, or nil: an image that cannot be pulled, a container that cannot be
// created, a process that exited (once is enough: a start does not wait
// for the kubelet's restarts), or a failed pod (evicted, say).
func podFailure(p *corev1.Pod) error {
	if p.Status.Phase == corev1.PodFailed {
		return fmt.Errorf("the pod failed: %s", join(p.Status.Reason, p.Status.Message))
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name != containerName {
			continue
		}
		if wt := cs.State.Waiting; wt != nil {
			switch {
			case contains(pullFailures, wt.Reason):
				return fmt.Errorf("the image %s cannot be pulled: %s", imageOf(p), join(wt.Reason, wt.Message))
			case contains(createFailures, wt.Reason):
				return fmt.Errorf("the container cannot be created: %s", join(wt.Reason, wt.Message))
			}
		}
		if t := cs.State.Terminated; t != nil {
			return exited(t)
		}
		if t := cs.LastTerminationState.Terminated; t != nil && cs.RestartCount > 0 {
			return exited(t)
		}
	}
	return nil
}

func exited(t *corev1.ContainerStateTerminated) error {
	if t.Reason == "OOMKilled" {
		return fmt.Errorf("the process ran out of memory (OOM) and was killed (exit code %d)", t.ExitCode)
	}
	if t.Reason != "" && t.Reason != "Error" && t.Reason != "Completed" {
		return fmt.Errorf("the process exited with code %d (%s)", t.ExitCode, t.Reason)
	}
	return fmt.Errorf("the process exited with code %d", t.ExitCode)
}

func imageOf(p *corev1.Pod) string {
	for _, c := range p.Spec.Containers {
		if c.Name == containerName {
			return c.Image
		}
	}
	return "?"
}

func join(reason, msg string) string {
	msg = strings.TrimSpace(msg)
	if msg == "" {
		return reason
	}
	return reason + ": " + msg
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// prober probes one address in the background until it answers.
type prober struct {
	interval time.Duration
	wake     func()
	probe    func(ctx context.Context, addr, path string) error
	mu       sync.Mutex
	addr     string
	cancel   context.CancelFunc
	ok       atomic.Bool
	wg       sync.WaitGroup
}

var probeClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// start probes addr (restarting if the address changed).
func (pr *prober) start(ctx context.Context, addr, path string) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.addr == addr {
		return
	}
	if pr.cancel != nil {
		pr.cancel()
	}
	pr.addr = addr
	pr.ok.Store(false)
	ctx, pr.cancel = context.WithCancel(ctx)
	pr.wg.Add(1)
	go func() {
		defer pr.wg.Done()
		t := time.NewTicker(pr.interval)
		defer t.Stop()
		for {
			if pr.probe(ctx, addr, path) == nil {
				pr.mu.Lock()
				if pr.addr == addr {
					pr.ok.Store(true)
				}
				pr.mu.Unlock()
				pr.wake()
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// passed reports whether addr answered.
func (pr *prober) passed(addr string) bool {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.addr == addr && pr.ok.Load()
}

func (pr *prober) stop() {
	pr.mu.Lock()
	if pr.cancel != nil {
		pr.cancel()
	}
	pr.mu.Unlock()
	pr.wg.Wait()
}

// probeOnce connects to addr, or GETs path there expecting 2xx or 3xx.
func probeOnce(ctx context.Context, addr, path string) error {
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if path == "" {
		d := net.Dialer{Timeout: 250 * time.Millisecond}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s answered %d", path, resp.StatusCode)
	}
	return nil
}

// markReady sets the ready mark on pod name in the background: the other
// replicas learn from it (Watch's EventReady) that the instance takes
// requests, a second before the kubelet says so. Failing is harmless: the
// kubelet's Ready condition follows.
func (k *Kube) markReady(name string) {
	go func() {
		ctx, cancel := context.WithTimeout(k.life, 10*time.Second)
		defer cancel()
		patch := []byte(`{"metadata":{"annotations":{"` + annotationReady + `":"true"}}}`)
		if _, err := k.cs.CoreV1().Pods(k.ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager}); err != nil {
			k.log.Debug("could not mark a ready pod", "pod", name, "err", err)
		}
	}()
}
