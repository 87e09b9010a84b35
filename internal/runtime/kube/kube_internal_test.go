package kube

import (
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	ktesting "k8s.io/client-go/testing"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime"
)

// TestDeploymentShape: the Deployment a version gets, field by field that
// matters: labels, selector, 0 replicas, and the pod's security, probe,
// resources, env and port.
func TestDeploymentShape(t *testing.T) {
	k := &Kube{cfg: Config{Owner: "owner1", StopGrace: 7 * time.Second, ImagePullSecret: "regcred"}, ns: testNS}
	spec := testSpec("hello-abc")
	d, err := deploymentObject(k.deploymentApply(spec))
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{runtime.LabelManaged: "true", runtime.LabelOwner: "owner1", runtime.LabelService: "hello",
		runtime.LabelVersionID: "42", runtime.LabelVersionNumber: "3"}
	if diff := cmp.Diff(labels, d.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if d.Name != "hello-v3" || d.Namespace != testNS || *d.Spec.Replicas != 0 {
		t.Errorf("name %s/%s, replicas %d", d.Namespace, d.Name, *d.Spec.Replicas)
	}
	sel := map[string]string{runtime.LabelManaged: "true", runtime.LabelOwner: "owner1", runtime.LabelVersionID: "42"}
	if diff := cmp.Diff(sel, d.Spec.Selector.MatchLabels); diff != "" {
		t.Errorf("selector (-want +got):\n%s", diff)
	}
	tpl := d.Spec.Template
	if v, ok := tpl.Labels[runtime.LabelInstance]; !ok || v != "" {
		t.Errorf("pods must start unclaimed (wisp.instance=\"\"), labels %v", tpl.Labels)
	}
	if tpl.Annotations[annotationDeletionCost] != costUnclaimed {
		t.Errorf("annotations %v", tpl.Annotations)
	}
	ps := tpl.Spec
	if *ps.EnableServiceLinks || *ps.AutomountServiceAccountToken || *ps.TerminationGracePeriodSeconds != 7 ||
		len(ps.ImagePullSecrets) != 1 || ps.ImagePullSecrets[0].Name != "regcred" {
		t.Errorf("pod spec: links %v, token %v, grace %d, pull secrets %v", *ps.EnableServiceLinks, *ps.AutomountServiceAccountToken,
			*ps.TerminationGracePeriodSeconds, ps.ImagePullSecrets)
	}
	if len(ps.Containers) != 1 {
		t.Fatalf("%d containers", len(ps.Containers))
	}
	c := ps.Containers[0]
	if c.Image != spec.Image || c.ImagePullPolicy != corev1.PullIfNotPresent || c.Ports[0].ContainerPort != 8080 {
		t.Errorf("image %s (%s), ports %v", c.Image, c.ImagePullPolicy, c.Ports)
	}
	if sc := c.SecurityContext; sc == nil || *sc.AllowPrivilegeEscalation || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("security context %+v", sc)
	}
	mem, cpu := resource.MustParse("64Mi"), resource.MustParse("250m")
	for what, l := range map[string]corev1.ResourceList{"limits": c.Resources.Limits, "requests": c.Resources.Requests} {
		if !l.Memory().Equal(mem) || !l.Cpu().Equal(cpu) {
			t.Errorf("%s %v, want memory 64Mi and cpu 250m", what, l)
		}
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if diff := cmp.Diff(map[string]string{"GREETING": "Hi", "PORT": "8080"}, env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	rp := c.ReadinessProbe
	if rp == nil || rp.TCPSocket == nil || rp.TCPSocket.Port.IntValue() != 8080 || rp.PeriodSeconds != 1 || rp.InitialDelaySeconds != 0 {
		t.Errorf("readiness probe %+v, want TCP on 8080 every second from the start", rp)
	}

	spec.ReadinessPath = "/healthz"
	spec.MemoryLimit, spec.CPULimit = 0, 0
	spec.Command, spec.Args = []string{"/bin/app"}, []string{"-v"}
	d2, _ := deploymentObject(k.deploymentApply(spec))
	c = d2.Spec.Template.Spec.Containers[0]
	if rp := c.ReadinessProbe; rp.HTTPGet == nil || rp.HTTPGet.Path != "/healthz" || rp.TCPSocket != nil {
		t.Errorf("with a readiness path the probe is %+v, want an HTTP GET of it", rp)
	}
	if len(c.Resources.Limits) != 0 || len(c.Resources.Requests) != 0 {
		t.Errorf("no limits asked, got %+v", c.Resources)
	}
	if diff := cmp.Diff([]string{"/bin/app"}, c.Command); diff != "" {
		t.Error(diff)
	}
	if d.Annotations[annotationTemplate] == d2.Annotations[annotationTemplate] || d.Annotations[annotationTemplate] == "" {
		t.Errorf("template hashes %q and %q: another template must hash differently", d.Annotations[annotationTemplate], d2.Annotations[annotationTemplate])
	}
}

func TestObjectName(t *testing.T) {
	long := strings.Repeat("a", 63)
	for _, tc := range []struct{ service, number, want string }{
		{"hello", "3", "hello-v3"},
		{strings.Repeat("a", 58), "12", strings.Repeat("a", 58) + "-v12"},
	} {
		if got := objectName(tc.service, tc.number); got != tc.want {
			t.Errorf("objectName(%q, %s) = %q, want %q", tc.service, tc.number, got, tc.want)
		}
	}
	a, b := objectName(long, "1"), objectName(long, "2")
	if len(a) > 63 || a == b || !strings.HasPrefix(a, strings.Repeat("a", 54)+"-") {
		t.Errorf("long names %q and %q: want distinct DNS labels of ≤ 63", a, b)
	}
}

// TestStartClaimsPod: Start creates the Deployment (0 replicas) and the
// Service, adds a replica, claims the pod the ReplicaSet made and returns
// its address.
func TestStartClaimsPod(t *testing.T) {
	k, cs, _ := newFake(t)
	in, err := k.Start(t.Context(), testSpec("hello-a"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := cs.CoreV1().Pods(testNS).Get(t.Context(), in.ContainerID, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Labels[runtime.LabelInstance] != "hello-a" || p.Annotations[annotationDeletionCost] != costClaimed {
		t.Errorf("pod labels %v, annotations %v: want it claimed", p.Labels, p.Annotations)
	}
	want := runtime.Instance{ID: "hello-a", ContainerID: p.Name, Service: "hello", VersionID: 42, VersionNumber: 3,
		Addr: p.Status.PodIP + ":8080", State: runtime.StateRunning, StartedAt: p.CreationTimestamp.Time}
	if diff := cmp.Diff(want, in); diff != "" {
		t.Errorf("Start (-want +got):\n%s", diff)
	}
	if n := replicas(t, cs, "hello-v3"); n != 1 {
		t.Errorf("replicas %d, want 1", n)
	}
	svc, err := cs.CoreV1().Services(testNS).Get(t.Context(), "hello-v3", metav1.GetOptions{})
	if err != nil || svc.Spec.Type != corev1.ServiceTypeClusterIP || svc.Spec.Selector[runtime.LabelVersionID] != "42" {
		t.Fatalf("service %+v, %v", svc, err)
	}
	// The Deployment was created with 0 replicas, never applied with any.
	for _, a := range cs.Actions() {
		if c, ok := a.(ktesting.CreateAction); ok && a.GetResource().Resource == "deployments" {
			if d := c.GetObject(); d == nil {
				t.Fatal("no object")
			}
		}
		if a.GetVerb() == "patch" && a.GetResource().Resource == "deployments" {
			t.Errorf("the Deployment was patched (%v): replicas belong to the scale subresource", a)
		}
	}
	got, err := k.Inspect(t.Context(), "hello-a")
	if err != nil || got != in {
		t.Errorf("Inspect = %+v, %v; want %+v", got, err, in)
	}
}

// TestConcurrentStarts: starts at once claim different pods.
func TestConcurrentStarts(t *testing.T) {
	k, cs, _ := newFake(t)
	const n = 4
	var wg sync.WaitGroup
	got := make([]runtime.Instance, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { got[i], errs[i] = k.Start(t.Context(), testSpec("hello-"+strconv.Itoa(i))) })
	}
	wg.Wait()
	pods := map[string]string{}
	for i, in := range got {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if other, ok := pods[in.ContainerID]; ok {
			t.Fatalf("%s and %s share pod %s", other, in.ID, in.ContainerID)
		}
		pods[in.ContainerID] = in.ID
	}
	if r := replicas(t, cs, "hello-v3"); r != n {
		t.Errorf("replicas %d, want %d", r, n)
	}
}

// TestStopRemovesItsPod: Stop lowers the pod's deletion cost before it
// lowers the replicas, waits for the pod to go, and keeps the Deployment
// at 0 replicas. A second Stop, and a Stop of an unknown ID, are no-ops.
func TestStopRemovesItsPod(t *testing.T) {
	k, cs, _ := newFake(t)
	a, b := startTwo(t, k)
	cs.ClearActions()
	if err := k.Stop(t.Context(), "hello-a", time.Second); err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, act := range cs.Actions() {
		switch {
		case act.GetVerb() == "patch" && act.GetResource().Resource == "pods":
			if p := string(act.(ktesting.PatchAction).GetPatch()); strings.Contains(p, costStopping) && strings.Contains(p, `"pod-template-hash":null`) {
				order = append(order, "release")
			}
		case act.GetVerb() == "update" && act.GetResource().Resource == "pods":
			if pod, ok := act.(ktesting.UpdateAction).GetObject().(*corev1.Pod); ok && pod.Name == a.ContainerID && len(pod.OwnerReferences) == 0 {
				order = append(order, "released")
			}
		case act.GetVerb() == "update" && act.GetSubresource() == "scale":
			order = append(order, "scale")
		}
	}
	if diff := cmp.Diff([]string{"release", "released", "scale"}, order); diff != "" {
		t.Errorf("Stop's writes (-want +got):\n%s", diff)
	}
	if _, err := cs.CoreV1().Pods(testNS).Get(t.Context(), a.ContainerID, metav1.GetOptions{}); err == nil {
		t.Error("the stopped instance's pod is still there")
	}
	if _, err := cs.CoreV1().Pods(testNS).Get(t.Context(), b.ContainerID, metav1.GetOptions{}); err != nil {
		t.Errorf("the other instance's pod went: %v", err)
	}
	if _, err := k.Inspect(t.Context(), "hello-a"); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("Inspect after Stop: %v, want not found", err)
	}
	if err := k.Stop(t.Context(), "hello-b", time.Second); err != nil {
		t.Fatal(err)
	}
	if r := replicas(t, cs, "hello-v3"); r != 0 {
		t.Errorf("replicas %d after both stopped, want 0 (the Deployment is kept)", r)
	}
	if err := k.Stop(t.Context(), "hello-b", time.Second); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := k.Stop(t.Context(), "nobody", time.Second); err != nil {
		t.Errorf("Stop of an unknown instance: %v", err)
	}
	if r := replicas(t, cs, "hello-v3"); r != 0 {
		t.Errorf("replicas %d after repeated Stops, want 0", r)
	}
}

// TestStopNeverLeavesThePickToTheReplicaSet: the stopped pod is out of
// the ReplicaSet before the replicas drop, so the ReplicaSet chooses only
// among the other instance and its own replacement, and takes the
// replacement (free pods cost less than claimed ones), even when it would
// have ranked the stopped pod first.
func TestStopNeverLeavesThePickToTheReplicaSet(t *testing.T) {
	k, cs, rs := newFake(t)
	a, b := startTwo(t, k)
	var candidates [][]string
	rs.mu.Lock()
	rs.pick = func(pods []corev1.Pod) string {
		var names []string
		for _, p := range pods {
			names = append(names, p.Name)
		}
		candidates = append(candidates, names)
		return rs.rank(pods)
	}
	rs.mu.Unlock()
	if err := k.Stop(t.Context(), "hello-a", time.Second); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the replacement removed", func() bool { return len(k.podsOfVersion("42")) == 1 })
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if len(candidates) == 0 {
		t.Fatal("the stand-in ReplicaSet removed no pod: the replacement it made for the released one is left")
	}
	for _, c := range candidates {
		if slices.Contains(c, a.ContainerID) {
			t.Errorf("the ReplicaSet chose among %v, the stopped pod %s included: it was not released first", c, a.ContainerID)
		}
	}
	for _, p := range rs.removed {
		if p.Labels[runtime.LabelInstance] != "" {
			t.Errorf("the ReplicaSet removed pod %s of instance %s", p.Name, p.Labels[runtime.LabelInstance])
		}
	}
	checkOneStopped(t, cs, a, b)
}

// TestStopOfAReleasedPod: a claimed pod that is no longer the
// ReplicaSet's (a Stop released it and Wisp died before deleting it) is
// deleted by the next Stop without a replica given back, which would take
// another instance's.
func TestStopOfAReleasedPod(t *testing.T) {
	k, cs, _ := newFake(t)
	a, b := startTwo(t, k)
	// What the dead Stop did: release a's pod and give its replica back.
	p, err := cs.CoreV1().Pods(testNS).Get(t.Context(), a.ContainerID, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	delete(p.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	if _, err := cs.CoreV1().Pods(testNS).Update(t.Context(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the pod released", func() bool {
		cur := k.pod(a.ContainerID)
		return cur != nil && metav1.GetControllerOf(cur) == nil
	})
	if err := k.scale(t.Context(), "hello-v3", -1); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the replacement removed", func() bool { return len(k.podsOfVersion("42")) == 2 })
	if err := k.Stop(t.Context(), "hello-a", time.Second); err != nil {
		t.Fatal(err)
	}
	checkOneStopped(t, cs, a, b)
	if _, err := k.Inspect(t.Context(), b.ID); err != nil {
		t.Errorf("the other instance: %v", err)
	}
}

// checkOneStopped: of two instances of hello-v3, stopped has no pod left,
// kept has its own, and one replica is left.
func checkOneStopped(t *testing.T, cs kubernetes.Interface, stopped, kept runtime.Instance) {
	t.Helper()
	if _, err := cs.CoreV1().Pods(testNS).Get(t.Context(), stopped.ContainerID, metav1.GetOptions{}); err == nil {
		t.Errorf("the stopped instance's pod %s is still there", stopped.ContainerID)
	}
	if _, err := cs.CoreV1().Pods(testNS).Get(t.Context(), kept.ContainerID, metav1.GetOptions{}); err != nil {
		t.Errorf("the other instance lost its pod: %v", err)
	}
	d, err := cs.AppsV1().Deployments(testNS).Get(t.Context(), "hello-v3", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *d.Spec.Replicas != 1 {
		t.Errorf("replicas %d, want 1", *d.Spec.Replicas)
	}
}

// TestStartFailures: what no pod could run fails before anything is made;
// a start that ends before it has a pod takes its replica back.
func TestStartFailures(t *testing.T) {
	k, cs, rs := newFake(t)
	bad := testSpec("hello-bad")
	bad.Image = "sha256:" + strings.Repeat("0", 64)
	if _, err := k.Start(t.Context(), bad); !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "repository@digest") {
		t.Fatalf("an image ID: %v, want invalid", err)
	}
	for _, a := range cs.Actions() {
		if v := a.GetVerb(); v != "list" && v != "watch" && v != "get" {
			t.Errorf("a refused start wrote to the cluster: %v", a)
		}
	}
	rs.mu.Lock()
	rs.ready = false
	rs.mu.Unlock()
	cs.PrependReactor("create", "pods", func(ktesting.Action) (bool, kruntime.Object, error) {
		return true, nil, errors.New("quota exceeded") // the ReplicaSet cannot make pods
	})
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if _, err := k.Start(ctx, testSpec("hello-slow")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a start without a pod: %v, want the deadline", err)
	}
	if r := replicas(t, cs, "hello-v3"); r != 0 {
		t.Errorf("replicas %d after a failed start, want 0", r)
	}
}

// TestWaitReady: the pod's Ready condition, or the adapter's own probe of
// the pod's address, ends the wait; a failure in the status ends it at
// once with the cause.
func TestWaitReady(t *testing.T) {
	k, cs, rs := newFake(t)
	rs.mu.Lock()
	rs.ready = false
	rs.mu.Unlock()
	in, err := k.Start(t.Context(), testSpec("hello-a"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := k.WaitReady(t.Context(), "hello-a"); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("ready before the pod was: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	setStatus(t, cs, in.ContainerID, func(s *corev1.PodStatus) { s.Conditions[0].Status = corev1.ConditionTrue })
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not ready 5s after the pod was")
	}

	// The adapter's probe: the "pod" listens on 127.0.0.1.
	var lc net.ListenConfig
	l, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	spec := testSpec("hello-b")
	spec.Port = l.Addr().(*net.TCPAddr).Port
	spec.VersionID, spec.VersionNumber = 43, 4
	b, err := k.Start(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	setStatus(t, cs, b.ContainerID, func(s *corev1.PodStatus) { s.PodIP = "127.0.0.1" })
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	got, err := k.WaitReady(ctx, "hello-b")
	if err != nil || got.Addr != l.Addr().String() {
		t.Fatalf("WaitReady on a listening pod that is not Ready yet: %+v, %v", got, err)
	}

	// A failure: the image cannot be pulled.
	c, err := k.Start(t.Context(), testSpec("hello-c"))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		setStatus(t, cs, c.ContainerID, func(s *corev1.PodStatus) {
			s.ContainerStatuses = []corev1.ContainerStatus{{Name: containerName, State: corev1.ContainerState{
				Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull", Message: "not found"}}}}
		})
	}()
	began := time.Now()
	_, err = k.WaitReady(t.Context(), "hello-c")
	if err == nil || !strings.Contains(err.Error(), "cannot be pulled: ErrImagePull: not found") || time.Since(began) > 2*time.Second {
		t.Fatalf("WaitReady on a pod whose image fails: %v after %s", err, time.Since(began))
	}
	if _, err := k.WaitReady(t.Context(), "nobody"); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("WaitReady of an unknown instance: %v", err)
	}
}

// TestUnschedulableGrace: an unschedulable pod fails the start only when
// it stays so for UnschedulableGrace, with the scheduler's message.
func TestUnschedulableGrace(t *testing.T) {
	k, cs, rs := newFake(t)
	rs.mu.Lock()
	rs.ready = false
	rs.mu.Unlock()
	in, err := k.Start(t.Context(), testSpec("hello-a"))
	if err != nil {
		t.Fatal(err)
	}
	setStatus(t, cs, in.ContainerID, func(s *corev1.PodStatus) {
		s.Phase, s.PodIP = corev1.PodPending, ""
		s.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
			Reason: corev1.PodReasonUnschedulable, Message: "0/1 nodes are available: 1 Insufficient memory."}}
	})
	began := time.Now()
	_, err = k.WaitReady(t.Context(), "hello-a")
	took := time.Since(began)
	if err == nil || !strings.Contains(err.Error(), "cannot be scheduled: 0/1 nodes are available: 1 Insufficient memory.") {
		t.Fatalf("got %v", err)
	}
	if took < 150*time.Millisecond || took > 2*time.Second {
		t.Errorf("failed after %s, want after the grace of 200ms", took)
	}
}

func TestPodFailure(t *testing.T) {
	term := func(code int32, reason string) *corev1.ContainerStateTerminated {
		return &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason}
	}
	for _, tc := range []struct {
		name string
		cs   corev1.ContainerStatus
		pod  corev1.PodPhase
		want string // "" = no failure
	}{
		{"creating", corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}, "", ""},
		{"running", corev1.ContainerStatus{State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}, "", ""},
		{"pull", corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "Back-off pulling image"}}}, "",
			"the image reg/x@sha256:1 cannot be pulled: ImagePullBackOff: Back-off pulling image"},
		{"config", corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CreateContainerConfigError", Message: `secret "s" not found`}}}, "",
			`the container cannot be created: CreateContainerConfigError: secret "s" not found`},
		{"exited", corev1.ContainerStatus{State: corev1.ContainerState{Terminated: term(3, "Error")}}, "", "the process exited with code 3"},
		{"crash loop", corev1.ContainerStatus{RestartCount: 2, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
			LastTerminationState: corev1.ContainerState{Terminated: term(1, "Error")}}, "", "the process exited with code 1"},
		{"restarted", corev1.ContainerStatus{RestartCount: 1, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
			LastTerminationState: corev1.ContainerState{Terminated: term(2, "Error")}}, "", "the process exited with code 2"},
		{"oom", corev1.ContainerStatus{State: corev1.ContainerState{Terminated: term(137, "OOMKilled")}}, "", "ran out of memory (OOM)"},
		{"evicted", corev1.ContainerStatus{}, corev1.PodFailed, "the pod failed: Evicted: low on memory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cs.Name = containerName
			p := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: containerName, Image: "reg/x@sha256:1"}}},
				Status: corev1.PodStatus{Phase: tc.pod, ContainerStatuses: []corev1.ContainerStatus{tc.cs}}}
			if tc.pod == corev1.PodFailed {
				p.Status.Reason, p.Status.Message = "Evicted", "low on memory"
			}
			err := podFailure(p)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("got %v, want none", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestPodEvents(t *testing.T) {
	pod := func(id string, restarts int32, state corev1.ContainerState, last *corev1.ContainerStateTerminated) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{runtime.LabelInstance: id}}}
		cs := corev1.ContainerStatus{Name: containerName, RestartCount: restarts, State: state}
		if last != nil {
			cs.LastTerminationState.Terminated = last
		}
		p.Status.ContainerStatuses = []corev1.ContainerStatus{cs}
		return p
	}
	running := corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	for _, tc := range []struct {
		name string
		o, n *corev1.Pod
		want []runtime.Event
	}{
		{"no change", pod("a", 0, running, nil), pod("a", 0, running, nil), nil},
		{"exited", pod("a", 0, running, nil), pod("a", 0, corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2}}, nil),
			[]runtime.Event{{Kind: runtime.EventDied, InstanceID: "a", ExitCode: 2}}},
		{"restarted", pod("a", 0, running, nil), pod("a", 1, running, &corev1.ContainerStateTerminated{ExitCode: 1}),
			[]runtime.Event{{Kind: runtime.EventDied, InstanceID: "a", ExitCode: 1}}},
		{"oom", pod("a", 0, running, nil), pod("a", 1, corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
			&corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"}),
			[]runtime.Event{{Kind: runtime.EventOOM, InstanceID: "a"}, {Kind: runtime.EventDied, InstanceID: "a", ExitCode: 137}}},
		{"unclaimed", pod("", 0, running, nil), pod("", 0, corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2}}, nil), nil},
		{"just claimed", pod("", 0, running, nil), pod("a", 1, running, &corev1.ContainerStateTerminated{ExitCode: 1}), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, podEvents(tc.o, tc.n)); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWatchRemoved: a claimed pod deleted by hand is EventRemoved, and a
// Stop of its instance gives the replica back, so the ReplicaSet's
// replacement does not stay as a pod nobody uses.
func TestWatchRemoved(t *testing.T) {
	k, cs, _ := newFake(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	events, _ := k.Watch(ctx)
	in, err := k.Start(t.Context(), testSpec("hello-a"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().Pods(testNS).Delete(t.Context(), in.ContainerID, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(5 * time.Second)
	for e := range events {
		if e.Kind == runtime.EventRemoved && e.InstanceID == "hello-a" {
			break
		}
		select {
		case <-timeout:
			t.Fatal("no removed event")
		default:
		}
	}
	// The stand-in ReplicaSet replaced the pod (replicas are still 1).
	eventually(t, "the replacement", func() bool { return len(unclaimed(k.podsOfVersion("42"))) == 1 })
	if err := k.Stop(t.Context(), "hello-a", time.Second); err != nil {
		t.Fatal(err)
	}
	if r := replicas(t, cs, "hello-v3"); r != 0 {
		t.Errorf("replicas %d after the Stop of a pod deleted by hand, want 0", r)
	}
}

// TestListAdoptsOrphans: a pod nobody claimed for OrphanAge is claimed by
// List under its own name; a young one is left for the start that waits.
func TestListAdoptsOrphans(t *testing.T) {
	k, cs, _ := newFake(t)
	k.cfg.OrphanAge = 200 * time.Millisecond
	in, err := k.Start(t.Context(), testSpec("hello-a"))
	if err != nil {
		t.Fatal(err)
	}
	if err := k.scale(t.Context(), "hello-v3", +1); err != nil { // a start that died before claiming
		t.Fatal(err)
	}
	eventually(t, "the orphan", func() bool { return len(unclaimed(k.podsOfVersion("42"))) == 1 })
	list, _ := k.List(t.Context())
	if len(list) != 1 || list[0].ID != "hello-a" {
		t.Fatalf("List = %+v, want only the claimed instance while the other pod is young", list)
	}
	time.Sleep(250 * time.Millisecond)
	list, _ = k.List(t.Context())
	if len(list) != 2 {
		t.Fatalf("List = %+v, want the orphan adopted", list)
	}
	for _, l := range list {
		if l.ID != in.ID && l.ID != l.ContainerID {
			t.Errorf("adopted %+v: want its pod name as its ID", l)
		}
	}
	p, _ := cs.CoreV1().Pods(testNS).List(t.Context(), metav1.ListOptions{})
	for _, p := range p.Items {
		if p.Labels[runtime.LabelInstance] == "" {
			t.Errorf("pod %s still unclaimed", p.Name)
		}
	}
}

// TestRemoveVersion: the version's Deployment and Service go; Versions
// lists the versions that have one.
func TestRemoveVersion(t *testing.T) {
	k, cs, _ := newFake(t)
	in, err := k.Start(t.Context(), testSpec("hello-a"))
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Stop(t.Context(), in.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	vs, err := k.Versions(t.Context())
	if err != nil || len(vs) != 1 || vs[0] != 42 {
		t.Fatalf("Versions = %v, %v; want [42]", vs, err)
	}
	if err := k.RemoveVersion(t.Context(), 42); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.AppsV1().Deployments(testNS).Get(t.Context(), "hello-v3", metav1.GetOptions{}); err == nil {
		t.Error("the Deployment is still there")
	}
	if _, err := cs.CoreV1().Services(testNS).Get(t.Context(), "hello-v3", metav1.GetOptions{}); err == nil {
		t.Error("the Service is still there")
	}
	if err := k.RemoveVersion(t.Context(), 42); err != nil {
		t.Errorf("removing it again: %v", err)
	}
	// A new start of the version makes it again.
	eventually(t, "the cache", func() bool { return k.deployment("hello-v3") == nil })
	if _, err := k.Start(t.Context(), testSpec("hello-b")); err != nil {
		t.Fatal(err)
	}
}

// TestDeploymentOfAnotherOwner: a Deployment of the same name that is not
// this installation's is never touched.
func TestDeploymentOfAnotherOwner(t *testing.T) {
	k, cs, _ := newFake(t)
	other := &Kube{cfg: Config{Owner: "owner2", StopGrace: time.Second}, ns: testNS}
	d, _ := deploymentObject(other.deploymentApply(testSpec("x")))
	if _, err := cs.AppsV1().Deployments(testNS).Create(t.Context(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := k.Start(t.Context(), testSpec("hello-a"))
	if !errors.Is(err, core.ErrConflict) || !strings.Contains(err.Error(), `owner "owner2"`) {
		t.Fatalf("got %v, want a conflict naming the other owner", err)
	}
}

func TestParseLine(t *testing.T) {
	l := parseLine(runtime.Stderr, "2026-01-02T03:04:05.123456789Z hello world\n")
	want := runtime.LogLine{Time: time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC), Stream: runtime.Stderr, Text: "hello world"}
	if diff := cmp.Diff(want, l); diff != "" {
		t.Error(diff)
	}
	lines := []runtime.LogLine{{Time: want.Time, Text: "a"}, {Time: want.Time.Add(time.Millisecond), Text: "b"}}
	if got := since(lines, want.Time.Add(time.Microsecond)); len(got) != 1 || got[0].Text != "b" {
		t.Errorf("since = %+v", got)
	}
}

// TestConcurrentStops: stops at once each see the ReplicaSet remove their
// own pods, not another's (so none deletes its pod behind the ReplicaSet's
// back, which would make it create a replacement), and the instance that
// is not stopped keeps its pod.
func TestConcurrentStops(t *testing.T) {
	k, cs, rs := newFake(t)
	var ins []runtime.Instance
	for i := range 5 {
		in, err := k.Start(t.Context(), testSpec("hello-"+strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		ins = append(ins, in)
	}
	cs.ClearActions()
	var wg sync.WaitGroup
	for _, in := range ins[1:] {
		wg.Go(func() {
			if err := k.Stop(t.Context(), in.ID, time.Second); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	rs.mu.Lock()
	for _, p := range rs.removed {
		if p.Labels[runtime.LabelInstance] != "" {
			t.Errorf("the ReplicaSet removed pod %s of instance %s", p.Name, p.Labels[runtime.LabelInstance])
		}
	}
	if rs.released != 4 {
		t.Errorf("the ReplicaSet let go of %d pods, want the 4 stopped", rs.released)
	}
	rs.mu.Unlock()
	if _, err := cs.CoreV1().Pods(testNS).Get(t.Context(), ins[0].ContainerID, metav1.GetOptions{}); err != nil {
		t.Errorf("the instance that was not stopped lost its pod: %v", err)
	}
	if r := replicas(t, cs, "hello-v3"); r != 1 {
		t.Errorf("replicas %d, want 1", r)
	}
}

// TestWatchReady: every replica learns that an instance is ready, from the
// mark WaitReady sets when its own probe saw it first, before the kubelet.
func TestWatchReady(t *testing.T) {
	k, cs, rs := newFake(t)
	rs.mu.Lock()
	rs.ready = false
	rs.mu.Unlock()
	other, err := start(t.Context(), Config{Namespace: testNS, Owner: "owner1"}, cs, "fake") // another replica
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	events, _ := other.Watch(ctx)
	var lc net.ListenConfig
	l, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	spec := testSpec("hello-a")
	spec.Port = l.Addr().(*net.TCPAddr).Port
	in, err := k.Start(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	setStatus(t, cs, in.ContainerID, func(s *corev1.PodStatus) { s.PodIP = "127.0.0.1" })
	if _, err := k.WaitReady(t.Context(), "hello-a"); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(5 * time.Second)
	for {
		select {
		case e := <-events:
			if e.Kind != runtime.EventReady {
				continue
			}
			if e.InstanceID != "hello-a" || e.Instance.Addr != l.Addr().String() || e.Instance.VersionID != 42 {
				t.Fatalf("ready event %+v", e)
			}
			return
		case <-timeout:
			t.Fatal("the other replica got no ready event")
		}
	}
}

// TestStopTwiceKeepsOthers: a second Stop of a stopped instance gives no
// replica back, even when the informer reports the pod's deletion after
// the first Stop returned, so another instance keeps its pod.
func TestStopTwiceKeepsOthers(t *testing.T) {
	k, cs, _ := newFake(t)
	a, b := startTwo(t, k)
	if err := k.Stop(t.Context(), a.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	// The deletion handler may run after Stop returned: give it time.
	time.Sleep(50 * time.Millisecond)
	if err := k.Stop(t.Context(), a.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	if r := replicas(t, cs, "hello-v3"); r != 1 {
		t.Errorf("replicas %d after stopping one of two twice, want 1", r)
	}
	if _, err := cs.CoreV1().Pods(testNS).Get(t.Context(), b.ContainerID, metav1.GetOptions{}); err != nil {
		t.Errorf("the other instance lost its pod: %v", err)
	}
}

// TestSettleLowersALeftoverReplica: a replica no instance holds (its pod
// waits for a claim that never comes) is taken back once nothing starts or
// stops; not while a start is in flight, and not the replica of an instance
// whose pod went without a Stop.
func TestSettleLowersALeftoverReplica(t *testing.T) {
	k, cs, _ := newFake(t)
	ctx := t.Context()
	for _, id := range []string{"hello-a", "hello-b"} {
		if _, err := k.Start(ctx, testSpec(id)); err != nil {
			t.Fatal(err)
		}
	}
	// A leftover: one replica more, whose pod nobody claims.
	if err := k.scale(ctx, "hello-v3", +1); err != nil {
		t.Fatal(err)
	}
	waitPods := func(n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for len(k.podsOfVersion("42")) != n {
			if time.Now().After(deadline) {
				t.Fatalf("%d pods, want %d", len(k.podsOfVersion("42")), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitPods(3)

	leave := k.enter("hello-v3") // a start in flight: hands off
	k.settle(ctx, "hello-v3", "42")
	if n := replicas(t, cs, "hello-v3"); n != 3 {
		t.Fatalf("settled while a start was in flight: replicas %d, want 3", n)
	}
	leave()

	k.mu.Lock()
	k.gone["hello-x"] = tombstone{deployment: "hello-v3", at: time.Now()} // its Stop gives one back
	k.mu.Unlock()
	k.settle(ctx, "hello-v3", "42")
	if n := replicas(t, cs, "hello-v3"); n != 3 {
		t.Fatalf("settled away a replica an instance still holds: replicas %d, want 3", n)
	}
	k.clearTombstone("hello-x")

	k.settle(ctx, "hello-v3", "42")
	if n := replicas(t, cs, "hello-v3"); n != 2 {
		t.Fatalf("replicas %d after settling, want 2 (the two instances)", n)
	}
	for _, id := range []string{"hello-a", "hello-b"} {
		if _, err := k.Inspect(ctx, id); err != nil {
			t.Fatalf("instance %s after settling: %v", id, err)
		}
	}
}

// startTwo starts instances hello-a and hello-b.
func startTwo(t *testing.T, k *Kube) (a, b runtime.Instance) {
	t.Helper()
	var err error
	if a, err = k.Start(t.Context(), testSpec("hello-a")); err != nil {
		t.Fatal(err)
	}
	if b, err = k.Start(t.Context(), testSpec("hello-b")); err != nil {
		t.Fatal(err)
	}
	return a, b
}
