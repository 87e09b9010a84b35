package kube

import (
	"context"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/tools/cache"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime"
)

var everything = labels.Everything()

// Inspect implements runtime.Runtime from the informer's cache.
func (k *Kube) Inspect(_ context.Context, id string) (runtime.Instance, error) {
	p := k.podOfInstance(id)
	if p == nil {
		return runtime.Instance{}, core.NotFoundf("instance %s not found", id)
	}
	return k.instanceOf(p), nil
}

// List implements runtime.Runtime: the claimed pods of this installation.
// A pod nobody has claimed for OrphanAge (a start that died between adding
// a replica and claiming it leaves one, and so does a ReplicaSet replacing a
// pod deleted while Wisp was down) is claimed here, with its pod name as
// the instance ID, so that the activator adopts or removes it like any
// other instance.
func (k *Kube) List(ctx context.Context) ([]runtime.Instance, error) {
	objs := k.pods.GetIndexer().List()
	out := make([]runtime.Instance, 0, len(objs))
	for _, o := range objs {
		p, ok := o.(*corev1.Pod)
		if !ok {
			continue
		}
		if p.Labels[runtime.LabelInstance] == "" {
			if p = k.adoptOrphan(ctx, p); p == nil {
				continue
			}
		}
		out = append(out, k.instanceOf(p))
	}
	return out, nil
}

// adoptOrphan claims an old unclaimed pod under its own name; nil when it
// is young, going, or claimed by someone else meanwhile.
func (k *Kube) adoptOrphan(ctx context.Context, p *corev1.Pod) *corev1.Pod {
	if _, ok := p.Labels[runtime.LabelInstance]; !ok || p.DeletionTimestamp != nil ||
		time.Since(p.CreationTimestamp.Time) < k.cfg.OrphanAge || len(validation.IsDNS1123Label(p.Name)) > 0 {
		return nil
	}
	patch, err := claimPatch(p.Name)
	if err != nil {
		return nil
	}
	got, err := k.patchPod(ctx, p.Name, patch)
	if err != nil {
		return nil
	}
	k.log.Info("claimed a pod nobody had claimed, for adoption", "pod", p.Name)
	return got
}

// instanceOf describes pod p as an instance.
func (k *Kube) instanceOf(p *corev1.Pod) runtime.Instance {
	vid, _ := strconv.ParseInt(p.Labels[runtime.LabelVersionID], 10, 64)
	vnum, _ := strconv.Atoi(p.Labels[runtime.LabelVersionNumber])
	in := runtime.Instance{
		ID:            p.Labels[runtime.LabelInstance],
		ContainerID:   p.Name,
		Service:       p.Labels[runtime.LabelService],
		VersionID:     vid,
		VersionNumber: vnum,
		Addr:          podAddr(p),
		State:         runtime.StateRunning,
		StartedAt:     p.CreationTimestamp.Time,
	}
	switch {
	case p.DeletionTimestamp != nil, p.Status.Phase == corev1.PodFailed, p.Status.Phase == corev1.PodSucceeded:
		in.State = runtime.StateExited
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name != containerName {
			continue
		}
		switch {
		case cs.State.Running != nil:
			in.StartedAt = cs.State.Running.StartedAt.Time
		case cs.State.Terminated != nil:
			in.State, in.ExitCode = runtime.StateExited, int(cs.State.Terminated.ExitCode)
		case cs.State.Waiting != nil && cs.LastTerminationState.Terminated != nil:
			// Waiting to be restarted (CrashLoopBackOff): it exited.
			in.State, in.ExitCode = runtime.StateExited, int(cs.LastTerminationState.Terminated.ExitCode)
		}
	}
	return in
}

// Watch implements runtime.Watcher from the pod informer: a container that
// terminated (or was restarted) is EventDied with its exit code, preceded
// by EventOOM when the kernel killed it for memory; a claimed pod deleted
// is EventRemoved; a claimed pod that became ready (its Ready condition,
// or the mark WaitReady sets when its own probe saw it first) is
// EventReady, so that every replica learns of it.
func (k *Kube) Watch(ctx context.Context) (<-chan runtime.Event, <-chan error) {
	out := make(chan runtime.Event, 64)
	errc := make(chan error, 1)
	send := func(evs []runtime.Event) {
		for _, e := range evs {
			select {
			case out <- e:
			case <-ctx.Done():
				return
			}
		}
	}
	reg, err := k.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if p, ok := obj.(*corev1.Pod); ok && p.Labels[runtime.LabelInstance] != "" && readyMark(p) && p.DeletionTimestamp == nil {
				send([]runtime.Event{k.readyEvent(p)})
			}
		},
		UpdateFunc: func(oldObj, newObj any) {
			o, _ := oldObj.(*corev1.Pod)
			n, _ := newObj.(*corev1.Pod)
			if o != nil && n != nil {
				evs := podEvents(o, n)
				if id := n.Labels[runtime.LabelInstance]; id != "" && readyMark(n) && n.DeletionTimestamp == nil &&
					(!readyMark(o) || o.Labels[runtime.LabelInstance] != id) {
					evs = append(evs, k.readyEvent(n))
				}
				send(evs)
			}
		},
		DeleteFunc: func(obj any) {
			if p := podOf(obj); p != nil && p.Labels[runtime.LabelInstance] != "" {
				send([]runtime.Event{{Kind: runtime.EventRemoved, InstanceID: p.Labels[runtime.LabelInstance]}})
			}
		},
	})
	if err != nil {
		errc <- err
		return out, errc
	}
	go func() {
		<-ctx.Done()
		_ = k.pods.RemoveEventHandler(reg)
		errc <- nil
	}()
	return out, errc
}

// podEvents are the events between two states of a claimed pod.
func podEvents(o, n *corev1.Pod) []runtime.Event {
	id := n.Labels[runtime.LabelInstance]
	if id == "" || o.Labels[runtime.LabelInstance] != id {
		return nil
	}
	oc, nc := containerStatus(o), containerStatus(n)
	if nc == nil {
		return nil
	}
	var t *corev1.ContainerStateTerminated
	switch {
	case nc.State.Terminated != nil && (oc == nil || oc.State.Terminated == nil):
		t = nc.State.Terminated
	case oc != nil && nc.RestartCount > oc.RestartCount && nc.LastTerminationState.Terminated != nil:
		t = nc.LastTerminationState.Terminated
	default:
		return nil
	}
	var evs []runtime.Event
	if t.Reason == "OOMKilled" {
		evs = append(evs, runtime.Event{Kind: runtime.EventOOM, InstanceID: id})
	}
	return append(evs, runtime.Event{Kind: runtime.EventDied, InstanceID: id, ExitCode: int(t.ExitCode)})
}

func containerStatus(p *corev1.Pod) *corev1.ContainerStatus {
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Name == containerName {
			return &p.Status.ContainerStatuses[i]
		}
	}
	return nil
}

// annotationReady marks a pod that WaitReady found ready before the
// kubelet did, so that the other replicas' informers see it ready at once.
const annotationReady = "wisp.ready"

// readyMark reports whether pod p is ready for the replicas: its Ready
// condition, or WaitReady's mark.
func readyMark(p *corev1.Pod) bool {
	return podReady(p) || p.Annotations[annotationReady] == "true"
}

func (k *Kube) readyEvent(p *corev1.Pod) runtime.Event {
	in := k.instanceOf(p)
	return runtime.Event{Kind: runtime.EventReady, InstanceID: in.ID, Instance: in}
}

// SharedAcrossReplicas implements runtime.Shared: every replica with the
// same owner ID sees the pods.
func (k *Kube) SharedAcrossReplicas() bool { return true }
