package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime"
)

// Start implements runtime.Runtime: make sure the version's Deployment
// exists, add a replica, claim the pod the ReplicaSet makes for it (or any
// pod nobody has claimed) and wait until it has an address. On error the
// replica is taken back.
func (k *Kube) Start(ctx context.Context, spec runtime.InstanceSpec) (runtime.Instance, error) {
	if err := k.checkSpec(spec); err != nil {
		return runtime.Instance{}, err
	}
	name := specName(spec)
	defer k.enter(name)()
	if err := k.ensureVersion(ctx, spec); err != nil {
		return runtime.Instance{}, err
	}
	if err := k.scale(ctx, name, +1); err != nil {
		return runtime.Instance{}, fmt.Errorf("kube: add a replica to deployment %s: %w", name, err)
	}
	pod, err := k.claim(ctx, spec.ID, name, strconv.FormatInt(spec.VersionID, 10))
	if err == nil {
		var in runtime.Instance
		if in, err = k.waitAddr(ctx, spec.ID); err == nil {
			return in, nil
		}
	}
	// Take the replica back: stop the claimed pod, or just scale down.
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if pod != nil {
		if serr := k.Stop(uctx, spec.ID, 0); serr != nil {
			k.log.Warn("a failed start left its pod", "instance", spec.ID, "pod", pod.Name, "err", serr)
		}
	} else if serr := k.scale(uctx, name, -1); serr != nil {
		k.log.Warn("a failed start could not take its replica back", "deployment", name, "err", serr)
	}
	return runtime.Instance{}, err
}

// checkSpec refuses, before anything is created, what no pod could run.
func (k *Kube) checkSpec(spec runtime.InstanceSpec) error {
	if errs := validation.IsDNS1123Label(spec.ID); len(errs) > 0 {
		return core.Invalidf("id", "instance ID %q is not a DNS label: %s", spec.ID, strings.Join(errs, "; "))
	}
	if _, err := name.NewDigest(spec.Image); err != nil {
		return core.Invalidf("image", "image %q of version %d (%s) is not a repository@digest reference the cluster can pull (%v); resolve it first",
			spec.Image, spec.VersionNumber, spec.ImageRef, err)
	}
	if spec.Port < 1 || spec.Port > 65535 {
		return core.Invalidf("port", "port %d is out of range", spec.Port)
	}
	return nil
}

// ensureVersion makes sure the version's Deployment and Service exist.
// The Deployment is created, not applied: creation is atomic (of two
// creators one gets AlreadyExists), and it sets 0 replicas, which an apply
// could only do by owning spec.replicas (a later apply would then reset
// what the scale subresource set). A Deployment made by an earlier Wisp
// with another template is re-applied while it has no replicas; with
// replicas it is left as it is, since applying would roll its pods.
func (k *Kube) ensureVersion(ctx context.Context, spec runtime.InstanceSpec) error {
	name := specName(spec)
	mu, _ := k.ensure.LoadOrStore(name, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	k.mu.Lock()
	done := k.ensured[name] == spec.VersionID
	k.mu.Unlock()
	if done && k.deployment(name) != nil {
		return nil
	}
	ac := k.deploymentApply(spec)
	want := ac.Annotations[annotationTemplate]
	vid := strconv.FormatInt(spec.VersionID, 10)
	for attempt := 0; ; attempt++ {
		d := k.deployment(name)
		if d == nil {
			got, err := k.cs.AppsV1().Deployments(k.ns).Get(ctx, name, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				d = nil
			case err != nil:
				return fmt.Errorf("kube: get deployment %s: %w", name, err)
			default:
				d = got
			}
		}
		switch {
		case d == nil:
			obj, err := deploymentObject(ac)
			if err != nil {
				return fmt.Errorf("kube: %w", err)
			}
			_, err = k.cs.AppsV1().Deployments(k.ns).Create(ctx, obj, metav1.CreateOptions{FieldManager: fieldManager})
			if apierrors.IsAlreadyExists(err) && attempt < 3 {
				continue // another creator won: look at what it made
			}
			if err != nil {
				return fmt.Errorf("kube: create deployment %s: %w", name, err)
			}
			k.log.Info("created deployment", "deployment", name, "service", spec.Service, "version", spec.VersionNumber)
		case d.Labels[runtime.LabelOwner] != k.cfg.Owner || d.Labels[runtime.LabelManaged] != "true":
			return core.Conflictf("deployment %s in namespace %s is not this Wisp installation's (owner %q); give each installation its own namespace",
				name, k.ns, d.Labels[runtime.LabelOwner])
		case d.Labels[runtime.LabelVersionID] != vid:
			// A deleted version of a service of the same name and number
			// (the service was deleted and made again): its Deployment goes.
			if attempt >= 3 {
				return fmt.Errorf("kube: deployment %s of an earlier version %s is still being removed", name, d.Labels[runtime.LabelVersionID])
			}
			k.log.Info("removing the deployment of a deleted version", "deployment", name, "version_id", d.Labels[runtime.LabelVersionID])
			if err := k.deleteObjects(ctx, name); err != nil {
				return err
			}
			if err := k.waitFor(ctx, func() (bool, error) { return k.deploymentGone(name, d.UID), nil }); err != nil {
				return fmt.Errorf("kube: wait for deployment %s to go: %w", name, err)
			}
			continue
		case d.Annotations[annotationTemplate] != want && d.Spec.Replicas != nil && *d.Spec.Replicas == 0:
			if _, err := k.cs.AppsV1().Deployments(k.ns).Apply(ctx, ac, metav1.ApplyOptions{FieldManager: fieldManager, Force: true}); err != nil {
				return fmt.Errorf("kube: apply deployment %s: %w", name, err)
			}
			k.log.Info("updated the deployment's template", "deployment", name)
		case d.Annotations[annotationTemplate] != want:
			k.log.Info("deployment made by another Wisp version kept as it is while it has pods", "deployment", name)
		}
		break
	}
	if _, err := k.cs.CoreV1().Services(k.ns).Apply(ctx, k.serviceApply(spec), metav1.ApplyOptions{FieldManager: fieldManager, Force: true}); err != nil {
		return fmt.Errorf("kube: apply service %s: %w", name, err)
	}
	// Wait until the informer has it, so that what follows reads it.
	if err := k.waitFor(ctx, func() (bool, error) {
		d := k.deployment(name)
		return d != nil && d.Labels[runtime.LabelVersionID] == vid, nil
	}); err != nil {
		return fmt.Errorf("kube: deployment %s did not reach the cache: %w", name, err)
	}
	k.mu.Lock()
	k.ensured[name] = spec.VersionID
	k.mu.Unlock()
	return nil
}

func (k *Kube) deploymentGone(name string, uid types.UID) bool {
	d := k.deployment(name)
	return d == nil || d.UID != uid
}

// scale changes the replicas of Deployment name by delta through the scale
// subresource, starting from the cached Deployment (one request when the
// cache is current) and retrying with a fresh read on conflict. It never
// goes below zero; a missing Deployment is not an error when scaling down.
func (k *Kube) scale(ctx context.Context, name string, delta int32) error {
	var sc *autoscalingv1.Scale
	if d := k.deployment(name); d != nil && d.Spec.Replicas != nil {
		sc = &autoscalingv1.Scale{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: k.ns, ResourceVersion: d.ResourceVersion},
			Spec:       autoscalingv1.ScaleSpec{Replicas: *d.Spec.Replicas},
		}
	}
	for attempt := 0; attempt < 20; attempt++ {
		if sc == nil {
			got, err := k.cs.AppsV1().Deployments(k.ns).GetScale(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) && delta < 0 {
				return nil
			}
			if err != nil {
				return err
			}
			sc = got
		}
		n := max(sc.Spec.Replicas+delta, 0)
		if n == sc.Spec.Replicas {
			return nil
		}
		sc.Spec.Replicas = n
		_, err := k.cs.AppsV1().Deployments(k.ns).UpdateScale(ctx, name, sc, metav1.UpdateOptions{FieldManager: fieldManager})
		switch {
		case err == nil:
			return nil
		case apierrors.IsConflict(err):
			sc = nil
			continue
		case apierrors.IsNotFound(err) && delta < 0:
			return nil
		}
		return err
	}
	return fmt.Errorf("scale of %s kept conflicting", name)
}

// claim waits for a pod of Deployment name (version vid) that nobody has
// claimed and claims it for instance id. A pod is claimed by changing its
// wisp.instance label from "" to id in a JSON patch that tests the old
// value first: the API server applies it atomically, so of two claimers
// one wins and the other tries the next pod. Pods that are further along
// (ready, then running, then the oldest) are taken first.
func (k *Kube) claim(ctx context.Context, id, name, vid string) (*corev1.Pod, error) {
	patch, err := claimPatch(id)
	if err != nil {
		return nil, err
	}
	var claimed *corev1.Pod
	err = k.waitFor(ctx, func() (bool, error) {
		if d := k.deployment(name); d != nil {
			if err := replicaFailure(d); err != nil {
				return false, err
			}
		}
		for _, p := range unclaimed(k.podsOfVersion(vid)) {
			got, err := k.cs.CoreV1().Pods(k.ns).Patch(ctx, p.Name, types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: fieldManager})
			if err == nil {
				claimed = got
				return true, nil
			}
			if !apierrors.IsNotFound(err) && !apierrors.IsInvalid(err) && !apierrors.IsConflict(err) && !isTestFailed(err) {
				return false, fmt.Errorf("kube: claim pod %s: %w", p.Name, err)
			}
		}
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	k.clearTombstone(id)
	return claimed, k.waitFor(ctx, func() (bool, error) { return k.podOfInstance(id) != nil, nil })
}

// claimPatch is the compare-and-swap of a pod's instance label (JSON
// pointer escapes: "~1" is "/").
func claimPatch(id string) ([]byte, error) {
	costPath := "/metadata/annotations/" + strings.ReplaceAll(annotationDeletionCost, "/", "~1")
	return json.Marshal([]map[string]string{
		{"op": "test", "path": "/metadata/labels/" + runtime.LabelInstance, "value": ""},
		{"op": "replace", "path": "/metadata/labels/" + runtime.LabelInstance, "value": id},
		{"op": "add", "path": costPath, "value": costClaimed},
	})
}

// isTestFailed reports a JSON patch whose test failed: the pod was claimed
// meanwhile. The API server answers 422 (Invalid) or, in older versions,
// 500 with the patch library's message.
func isTestFailed(err error) bool {
	return strings.Contains(err.Error(), "testing value") || strings.Contains(err.Error(), "test operation")
}

// unclaimed returns the pods nobody has claimed and that are not being
// deleted, the most advanced first.
func unclaimed(pods []*corev1.Pod) []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range pods {
		if v, ok := p.Labels[runtime.LabelInstance]; ok && v == "" && p.DeletionTimestamp == nil &&
			p.Status.Phase != corev1.PodFailed && p.Status.Phase != corev1.PodSucceeded {
			out = append(out, p)
		}
	}
	rank := func(p *corev1.Pod) int {
		switch {
		case podReady(p):
			return 0
		case p.Status.Phase == corev1.PodRunning:
			return 1
		case p.Spec.NodeName != "":
			return 2
		}
		return 3
	}
	sort.SliceStable(out, func(i, j int) bool {
		if ri, rj := rank(out[i]), rank(out[j]); ri != rj {
			return ri < rj
		}
		return out[i].CreationTimestamp.Before(&out[j].CreationTimestamp)
	})
	return out
}

// replicaFailure is the Deployment's ReplicaFailure condition as an error:
// the ReplicaSet cannot create pods (a quota, an admission policy).
func replicaFailure(d *appsv1.Deployment) error {
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue {
			return fmt.Errorf("the cluster cannot create pods for deployment %s: %s: %s", d.Name, c.Reason, c.Message)
		}
	}
	return nil
}

// waitAddr waits until the pod of instance id has an address, or fails
// with what keeps it from getting one (see podFailure).
func (k *Kube) waitAddr(ctx context.Context, id string) (runtime.Instance, error) {
	var in runtime.Instance
	w := k.newFailureWatch()
	err := k.waitForTimed(ctx, func() (bool, time.Duration, error) {
		p := k.podOfInstance(id)
		if p == nil || p.DeletionTimestamp != nil {
			return false, 0, fmt.Errorf("instance %s: its pod was deleted while starting", id)
		}
		if err := w.check(p); err != nil {
			return false, 0, fmt.Errorf("instance %s (pod %s): %w", id, p.Name, err)
		}
		if p.Status.PodIP != "" {
			in = k.instanceOf(p)
			return true, 0, nil
		}
		return false, w.recheck(), nil
	})
	return in, err
}

// waitFor calls cond now and after every informer change until it is done
// or fails, or ctx ends.
func (k *Kube) waitFor(ctx context.Context, cond func() (bool, error)) error {
	return k.waitForTimed(ctx, func() (bool, time.Duration, error) {
		ok, err := cond()
		return ok, 0, err
	})
}

// waitForTimed is waitFor for conditions that may also need a look after
// a delay (again > 0) when nothing changes meanwhile.
func (k *Kube) waitForTimed(ctx context.Context, cond func() (bool, time.Duration, error)) error {
	for {
		changed := k.changes.wait()
		ok, again, err := cond()
		if ok || err != nil {
			return err
		}
		var t *time.Timer
		var timer <-chan time.Time
		if again > 0 {
			t = time.NewTimer(again)
			timer = t.C
		}
		select {
		case <-changed:
		case <-timer:
		case <-ctx.Done():
		}
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// podAddr is where the router reaches pod p.
func podAddr(p *corev1.Pod) string {
	if p.Status.PodIP == "" {
		return ""
	}
	port := ""
	for _, c := range p.Spec.Containers {
		if c.Name == containerName && len(c.Ports) > 0 {
			port = strconv.Itoa(int(c.Ports[0].ContainerPort))
		}
	}
	if port == "" {
		return ""
	}
	return net.JoinHostPort(p.Status.PodIP, port)
}
