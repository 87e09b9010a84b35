package kube

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	ktesting "k8s.io/client-go/testing"

	"github.com/wisp-run/wisp/internal/runtime"
)

// The fake clientset has no controllers: replicaSet below stands in for
// the Deployment and ReplicaSet controllers, and the tests play the
// kubelet by writing pod status.

const testNS = "wisp-test"

var deploymentsGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}

// newFake returns a runtime over a fake clientset that serves the scale
// subresource, with a stand-in ReplicaSet controller running.
func newFake(t *testing.T) (*Kube, *fake.Clientset, *replicaSet) {
	t.Helper()
	cs := fake.NewClientset()
	serveScale(cs)
	rs := &replicaSet{cs: cs, ready: true}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go rs.run(ctx)
	k, err := start(t.Context(), Config{Namespace: testNS, Owner: "owner1", UnschedulableGrace: 200 * time.Millisecond,
		ProbeInterval: 5 * time.Millisecond, StopGrace: time.Second}, cs, "fake")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Close() })
	// The stand-in pods' addresses are never dialled: only loopback ones,
	// which tests listen on.
	k.probe = func(ctx context.Context, addr, path string) error {
		if strings.HasPrefix(addr, "127.0.0.1:") {
			return probeOnce(ctx, addr, path)
		}
		return errors.New("a stand-in pod does not answer")
	}
	return k, cs, rs
}

// serveScale makes the fake serve deployments/scale from the Deployment's
// spec.replicas, refusing a stale resourceVersion as the API server does.
func serveScale(cs *fake.Clientset) {
	// The tracker leaves resourceVersion alone; the API server sets it.
	cs.PrependReactor("create", "deployments", func(a ktesting.Action) (bool, kruntime.Object, error) {
		if d, ok := a.(ktesting.CreateAction).GetObject().(*appsv1.Deployment); ok {
			d.ResourceVersion = "1"
		}
		return false, nil, nil
	})
	cs.PrependReactor("get", "deployments", func(a ktesting.Action) (bool, kruntime.Object, error) {
		ga := a.(ktesting.GetAction)
		if ga.GetSubresource() != "scale" {
			return false, nil, nil
		}
		obj, err := cs.Tracker().Get(deploymentsGVR, ga.GetNamespace(), ga.GetName())
		if err != nil {
			return true, nil, err
		}
		d := obj.(*appsv1.Deployment)
		return true, &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: d.Name, Namespace: d.Namespace, ResourceVersion: d.ResourceVersion},
			Spec: autoscalingv1.ScaleSpec{Replicas: *d.Spec.Replicas}}, nil
	})
	cs.PrependReactor("update", "deployments", func(a ktesting.Action) (bool, kruntime.Object, error) {
		ua := a.(ktesting.UpdateAction)
		if ua.GetSubresource() != "scale" {
			return false, nil, nil
		}
		sc := ua.GetObject().(*autoscalingv1.Scale)
		obj, err := cs.Tracker().Get(deploymentsGVR, ua.GetNamespace(), sc.Name)
		if err != nil {
			return true, nil, err
		}
		d := obj.(*appsv1.Deployment).DeepCopy()
		if sc.ResourceVersion != d.ResourceVersion {
			return true, nil, apierrors.NewConflict(deploymentsGVR.GroupResource(), d.Name, fmt.Errorf("stale"))
		}
		n := sc.Spec.Replicas
		d.Spec.Replicas = &n
		rv, _ := strconv.Atoi(d.ResourceVersion)
		d.ResourceVersion = strconv.Itoa(rv + 1)
		if err := cs.Tracker().Update(deploymentsGVR, d, d.Namespace); err != nil {
			return true, nil, err
		}
		return true, sc, nil
	})
}

// replicaSet keeps each Deployment's pods at its replicas, removing pods
// in the ReplicaSet's order: not ready first, then the lowest deletion
// cost, then the newest.
type replicaSet struct {
	cs    *fake.Clientset
	ready bool // new pods are ready at once
	mu    sync.Mutex
	n     int
	// pick, when set, chooses the pod to remove instead.
	pick func(pods []corev1.Pod) string
	// released counts the pods it let go of; removed has those it took
	// for a scale-down, as they were when it chose.
	released int
	removed  []corev1.Pod
}

// fakeHash is the stand-in ReplicaSet's pod-template-hash.
const fakeHash = "fake0"

// run syncs on every change of a Deployment or a pod, as the controllers
// do.
func (r *replicaSet) run(ctx context.Context) {
	dw, err := r.cs.AppsV1().Deployments(testNS).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	pw, err := r.cs.CoreV1().Pods(testNS).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-dw.ResultChan():
			if !ok {
				return
			}
		case ev, ok := <-pw.ResultChan():
			if !ok {
				return
			}
			if ev.Type == watch.Added {
				continue
			}
		}
		r.sync(ctx)
	}
}

func (r *replicaSet) sync(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ds, _ := r.cs.AppsV1().Deployments(testNS).List(ctx, metav1.ListOptions{})
	for _, d := range ds.Items {
		sel := labels.SelectorFromSet(d.Spec.Selector.MatchLabels).String()
		pl, _ := r.cs.CoreV1().Pods(testNS).List(ctx, metav1.ListOptions{LabelSelector: sel})
		// Its own pods: those it owns and its selector (the Deployment's
		// plus the hash label) still matches; it lets go of the others.
		var pods []corev1.Pod
		for _, p := range pl.Items {
			if metav1.GetControllerOf(&p) == nil {
				continue
			}
			if p.Labels[appsv1.DefaultDeploymentUniqueLabelKey] != fakeHash {
				p.OwnerReferences = nil
				_, _ = r.cs.CoreV1().Pods(testNS).Update(ctx, &p, metav1.UpdateOptions{})
				r.released++
				continue
			}
			pods = append(pods, p)
		}
		want := int(*d.Spec.Replicas)
		for len(pods) < want {
			r.n++
			lbl := map[string]string{appsv1.DefaultDeploymentUniqueLabelKey: fakeHash}
			for k, v := range d.Spec.Template.Labels {
				lbl[k] = v
			}
			ann := map[string]string{}
			for k, v := range d.Spec.Template.Annotations {
				ann[k] = v
			}
			yes := true
			p := corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", d.Name, r.n), Namespace: testNS, UID: types.UID(fmt.Sprint("uid-", r.n)),
					Labels: lbl, Annotations: ann, CreationTimestamp: metav1.Now(),
					OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: d.Name + "-" + fakeHash,
						UID: types.UID("rs-" + d.Name), Controller: &yes}}},
				Spec: d.Spec.Template.Spec,
				Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: fmt.Sprintf("192.0.2.%d", r.n%250+1),
					Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: boolStatus(r.ready)}}},
			}
			if _, err := r.cs.CoreV1().Pods(testNS).Create(ctx, &p, metav1.CreateOptions{}); err != nil {
				return
			}
			pods = append(pods, p)
		}
		for len(pods) > want {
			victim := r.rank(pods)
			if r.pick != nil {
				victim = r.pick(pods)
			}
			_ = r.cs.CoreV1().Pods(testNS).Delete(ctx, victim, metav1.DeleteOptions{})
			for i := range pods {
				if pods[i].Name == victim {
					r.removed = append(r.removed, pods[i])
					pods = append(pods[:i], pods[i+1:]...)
					break
				}
			}
		}
	}
}

func (r *replicaSet) rank(pods []corev1.Pod) string {
	sorted := append([]corev1.Pod(nil), pods...)
	sort.SliceStable(sorted, func(i, j int) bool {
		ri, rj := podReady(&sorted[i]), podReady(&sorted[j])
		if ri != rj {
			return !ri
		}
		ci, _ := strconv.Atoi(sorted[i].Annotations[annotationDeletionCost])
		cj, _ := strconv.Atoi(sorted[j].Annotations[annotationDeletionCost])
		if ci != cj {
			return ci < cj
		}
		return sorted[i].Name > sorted[j].Name
	})
	return sorted[0].Name
}

func boolStatus(b bool) corev1.ConditionStatus {
	if b {
		return corev1.ConditionTrue
	}
	return corev1.ConditionFalse
}

func testSpec(id string) runtime.InstanceSpec {
	return runtime.InstanceSpec{ID: id, Service: "hello", VersionID: 42, VersionNumber: 3,
		Image: "127.0.0.1:5000/hello@sha256:" + fmt.Sprintf("%064d", 1), ImageRef: "hello:1", Port: 8080,
		Env: []string{"GREETING=Hi"}, MemoryLimit: 64 << 20, CPULimit: 0.25}
}

// replicas returns the Deployment's replicas as the API has them.
func replicas(t *testing.T, cs *fake.Clientset, name string) int32 {
	t.Helper()
	d, err := cs.AppsV1().Deployments(testNS).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return *d.Spec.Replicas
}

// eventually fails the test unless cond holds within 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// setStatus plays the kubelet: it rewrites the status of pod name.
func setStatus(t *testing.T, cs *fake.Clientset, name string, f func(*corev1.PodStatus)) {
	t.Helper()
	p, err := cs.CoreV1().Pods(testNS).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f(&p.Status)
	if _, err := cs.CoreV1().Pods(testNS).UpdateStatus(t.Context(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}
