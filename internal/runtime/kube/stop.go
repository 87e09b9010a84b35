package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/wisp-run/wisp/internal/runtime"
)

// releaseWindow bounds the wait for the ReplicaSet to let go of a pod
// after its hash label is removed; it takes milliseconds.
const releaseWindow = 3 * time.Second

// pickWindow bounds the wait for the ReplicaSet to remove a replica no
// instance holds after a scale-down.
const pickWindow = 3 * time.Second

// Stop implements runtime.Runtime. The ReplicaSet is never left to pick
// which pod goes: the pod is first taken out of it (releasePod), and only
// then is the Deployment given one replica fewer, so the ReplicaSet can only
// remove the replacement it made meanwhile, never another instance's pod.
// The pod is then deleted directly. Stop returns once the pod is gone:
// after grace (its SIGTERM to SIGKILL time) and at most 10 s more, after
// which it is deleted without grace. An instance whose pod went without a
// Stop (deleted by hand) gives its replica back here, so its replacement
// goes too.
func (k *Kube) Stop(ctx context.Context, id string, grace time.Duration) error {
	k.mu.Lock()
	k.stopping[id] = true
	k.mu.Unlock()
	defer func() {
		k.mu.Lock()
		delete(k.stopping, id)
		k.mu.Unlock()
	}()
	p := k.podOfInstance(id)
	if p == nil {
		k.mu.Lock()
		t, ok := k.gone[id]
		delete(k.gone, id)
		k.mu.Unlock()
		if ok {
			if err := k.scale(ctx, t.deployment, -1); err != nil {
				return fmt.Errorf("kube: give back the replica of %s to %s: %w", id, t.deployment, err)
			}
		}
		return nil
	}
	k.clearTombstone(id)
	k.mark(p.Name) // its deletion is ours, also if the informer reports it after Stop returned
	name, vid := podDeployment(p), p.Labels[runtime.LabelVersionID]
	leave := k.enter(name)
	if p.DeletionTimestamp == nil && metav1.GetControllerOf(p) != nil {
		// A pod with no controller was released by an earlier Stop that
		// ended before deleting it (Wisp died): its replica went to the
		// ReplicaSet's replacement then, so none is given back now.
		if err := k.releasePod(ctx, p); err != nil {
			leave()
			return err
		}
	}
	err := k.deleteAndWait(ctx, p, grace)
	if leave() == 0 && err == nil {
		k.settle(ctx, name, vid)
	}
	return err
}

// enter counts a start or stop of Deployment name in flight; the returned
// func ends it and says how many remain.
func (k *Kube) enter(name string) func() int {
	k.mu.Lock()
	k.busy[name]++
	k.mu.Unlock()
	return func() int {
		k.mu.Lock()
		defer k.mu.Unlock()
		k.busy[name]--
		n := k.busy[name]
		if n == 0 {
			delete(k.busy, name)
		}
		return n
	}
}

// settle lowers Deployment name to as many replicas as the version has
// instances (claimed pods not being stopped), once no start or stop of it
// is in flight here: a replica too many, whose pod waits for a claim that
// never comes, is left by a Stop whose ReplicaSet did not release the pod
// in time, or by a start that lost its pod to a stop's scale-down. Only the
// leader starts and stops, so no other process's start is counted out
// here.
func (k *Kube) settle(ctx context.Context, name, vid string) {
	want := int32(0)
	for _, p := range k.podsOfVersion(vid) {
		if p.DeletionTimestamp == nil && p.Labels[runtime.LabelInstance] != "" && p.Annotations[annotationDeletionCost] != costStopping {
			want++
		}
	}
	// An instance whose pod went without a Stop still holds its replica:
	// its Stop gives it back.
	k.mu.Lock()
	for _, t := range k.gone {
		if t.deployment == name {
			want++
		}
	}
	k.mu.Unlock()
	for attempt := 0; attempt < 10; attempt++ {
		k.mu.Lock()
		busy := k.busy[name]
		k.mu.Unlock()
		if busy > 0 {
			return // the start or stop in flight settles when it ends
		}
		sc, err := k.cs.AppsV1().Deployments(k.ns).GetScale(ctx, name, metav1.GetOptions{})
		if err != nil || sc.Spec.Replicas <= want {
			return
		}
		k.log.Info("the deployment has more replicas than instances; lowering it", "deployment", name,
			"replicas", sc.Spec.Replicas, "instances", want)
		from := sc.Spec.Replicas
		sc.Spec.Replicas = want
		_, err = k.cs.AppsV1().Deployments(k.ns).UpdateScale(ctx, name, sc, metav1.UpdateOptions{FieldManager: fieldManager})
		switch {
		case err == nil:
			// Return once the ReplicaSet took the extra pod, so a caller
			// that lists next sees the version as it is.
			wctx, cancel := context.WithTimeout(ctx, pickWindow)
			defer cancel()
			_ = k.waitFor(wctx, func() (bool, error) {
				active := int32(0)
				for _, p := range k.podsOfVersion(vid) {
					if p.DeletionTimestamp == nil {
						active++
					}
				}
				return active <= want, nil
			})
			return
		case !apierrors.IsConflict(err):
			k.log.Warn("could not lower the deployment's replicas", "deployment", name, "from", from, "to", want, "err", err)
			return
		}
	}
}

// releasePod takes pod p out of its ReplicaSet and then removes the
// replica it held. Leaving the choice to the ReplicaSet is not safe: it
// ranks pods by its own cache, which can lag the deletion-cost mark, and
// concurrent stops made it remove an instance that was not being stopped
// (seen in CI). So p loses the pod-template-hash label, which the
// ReplicaSet's selector has and the Deployment's and the Service's have
// not: the ReplicaSet lets go of p (it removes its owner reference, the
// sign that its cache saw the change) and makes a replacement, and only
// then does the Deployment lose a replica, which the ReplicaSet takes from
// that replacement: a pod just made is unscheduled or pending, and those
// go first. p keeps serving through the Service until it is deleted.
// The replacement costs a pod made and removed at once; that is the price
// of a stop that never takes another instance.
func (k *Kube) releasePod(ctx context.Context, p *corev1.Pod) error {
	name := podDeployment(p)
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{annotationDeletionCost: costStopping},
		"labels":      map[string]any{appsv1.DefaultDeploymentUniqueLabelKey: nil},
	}})
	if _, err := k.cs.CoreV1().Pods(k.ns).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager}); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("kube: release pod %s from its ReplicaSet: %w", p.Name, err)
	}
	began := time.Now()
	wctx, cancel := context.WithTimeout(ctx, releaseWindow)
	err := k.waitFor(wctx, func() (bool, error) {
		cur := k.pod(p.Name)
		return cur == nil || cur.UID != p.UID || cur.DeletionTimestamp != nil || metav1.GetControllerOf(cur) == nil, nil
	})
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("kube: stop %s: %w", p.Name, ctx.Err())
		}
		// The controller manager is down or slow: the replica goes anyway,
		// and the ReplicaSet lets go of the pod when it catches up.
		k.log.Warn("the ReplicaSet did not release the pod in time; removing its replica anyway", "pod", p.Name, "wait", releaseWindow)
	} else {
		k.log.Debug("the ReplicaSet released the pod", "pod", p.Name, "after", time.Since(began).Round(time.Millisecond))
	}
	if err := k.scale(ctx, name, -1); err != nil {
		return fmt.Errorf("kube: remove a replica of %s: %w", name, err)
	}
	return nil
}

// deleteAndWait waits until pod p is gone, shortening its grace to grace
// first, and deleting it without grace when it outstays grace + 10 s.
func (k *Kube) deleteAndWait(ctx context.Context, p *corev1.Pod, grace time.Duration) error {
	if cur := k.pod(p.Name); cur != nil && cur.UID == p.UID &&
		(cur.DeletionGracePeriodSeconds == nil || time.Duration(*cur.DeletionGracePeriodSeconds)*time.Second > grace) {
		if err := k.deletePod(ctx, p.Name, grace); err != nil {
			return err
		}
	}
	gone := func() (bool, error) {
		cur := k.pod(p.Name)
		return cur == nil || cur.UID != p.UID, nil
	}
	wctx, cancel := context.WithTimeout(ctx, grace+10*time.Second)
	err := k.waitFor(wctx, gone)
	cancel()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("kube: stop %s: %w", p.Name, ctx.Err())
	}
	k.log.Warn("pod outstayed its grace; deleting it without", "pod", p.Name)
	if err := k.deletePod(ctx, p.Name, 0); err != nil {
		return err
	}
	wctx, cancel = context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := k.waitFor(wctx, gone); err != nil {
		return fmt.Errorf("kube: pod %s is still there after a deletion without grace: %w", p.Name, err)
	}
	return nil
}

// deletePod deletes a pod with grace (rounded up to whole seconds).
func (k *Kube) deletePod(ctx context.Context, name string, grace time.Duration) error {
	secs := int64((grace + time.Second - 1) / time.Second)
	err := k.cs.CoreV1().Pods(k.ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &secs})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("kube: delete pod %s: %w", name, err)
	}
	return nil
}

// pod returns the cached pod name, or nil.
func (k *Kube) pod(name string) *corev1.Pod {
	obj, ok, _ := k.pods.GetIndexer().GetByKey(k.ns + "/" + name)
	if !ok {
		return nil
	}
	p, _ := obj.(*corev1.Pod)
	return p
}

// patchPod applies a JSON patch to a pod.
func (k *Kube) patchPod(ctx context.Context, name string, patch []byte) (*corev1.Pod, error) {
	return k.cs.CoreV1().Pods(k.ns).Patch(ctx, name, types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: fieldManager})
}

// Versions implements runtime.VersionRemover: the versions with a
// Deployment.
func (k *Kube) Versions(context.Context) ([]int64, error) {
	ds, err := k.deployments.Deployments(k.ns).List(everything)
	if err != nil {
		return nil, fmt.Errorf("kube: list deployments: %w", err)
	}
	out := make([]int64, 0, len(ds))
	for _, d := range ds {
		if id, err := strconv.ParseInt(d.Labels[runtime.LabelVersionID], 10, 64); err == nil {
			out = append(out, id)
		}
	}
	return out, nil
}

// RemoveVersion implements runtime.VersionRemover: it deletes the
// version's Deployment and Service; the garbage collector removes the
// pods, each after its grace.
func (k *Kube) RemoveVersion(ctx context.Context, id int64) error {
	ds, err := k.deployments.Deployments(k.ns).List(everything)
	if err != nil {
		return fmt.Errorf("kube: list deployments: %w", err)
	}
	vid := strconv.FormatInt(id, 10)
	for _, d := range ds {
		if d.Labels[runtime.LabelVersionID] == vid {
			if err := k.deleteObjects(ctx, d.Name); err != nil {
				return err
			}
			k.log.Info("removed the deployment of a deleted version", "deployment", d.Name, "version_id", id)
		}
	}
	k.mu.Lock()
	for name, v := range k.ensured {
		if v == id {
			delete(k.ensured, name)
		}
	}
	k.mu.Unlock()
	return nil
}

// deleteObjects deletes a version's Deployment and Service (name).
func (k *Kube) deleteObjects(ctx context.Context, name string) error {
	bg := metav1.DeletePropagationBackground
	if err := k.cs.AppsV1().Deployments(k.ns).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("kube: delete deployment %s: %w", name, err)
	}
	if err := k.cs.CoreV1().Services(k.ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("kube: delete service %s: %w", name, err)
	}
	return nil
}

// mark records that a Stop of this process set pod name's deletion cost to
// the minimum, so other Stops know its going is not a wrong pick even after
// the pod and the Stop are gone. Marks are kept for a minute.
func (k *Kube) mark(name string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := time.Now()
	for n, at := range k.marked {
		if now.Sub(at) > time.Minute {
			delete(k.marked, n)
		}
	}
	k.marked[name] = now
}

func (k *Kube) wasMarked(name string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.marked[name]
	return ok
}
