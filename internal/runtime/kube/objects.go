package kube

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	"github.com/wisp-run/wisp/internal/runtime"
)

const (
	// fieldManager owns the fields Wisp applies (server-side apply).
	fieldManager = "wisp"
	// containerName is the one container of every pod.
	containerName = "app"
	// annotationTemplate on a Deployment is a hash of what Wisp applied, so
	// a Deployment made by an earlier Wisp with another template is noticed.
	annotationTemplate = "wisp.template-hash"
	// annotationDeletionCost ranks pods for removal by their ReplicaSet:
	// lower goes first (after pending and not-ready pods).
	annotationDeletionCost = "controller.kubernetes.io/pod-deletion-cost"
	// Deletion costs: a pod being stopped, an unclaimed one, a claimed one.
	costStopping  = "-2147483648"
	costUnclaimed = "0"
	costClaimed   = "100"
)

// objectName names the Deployment and Service of a version: a DNS label
// (so it is valid for both), "<service>-v<number>", cut and given a hash of
// the whole when longer than 63 characters.
func objectName(service, number string) string {
	name := service + "-v" + number
	if len(name) <= 63 {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return strings.TrimRight(name[:54], "-") + "-" + hex.EncodeToString(sum[:4])
}

func specName(spec runtime.InstanceSpec) string {
	return objectName(spec.Service, strconv.Itoa(spec.VersionNumber))
}

// versionLabels are the labels of a version's objects and pods.
func (k *Kube) versionLabels(spec runtime.InstanceSpec) map[string]string {
	return map[string]string{
		runtime.LabelManaged:       "true",
		runtime.LabelOwner:         k.cfg.Owner,
		runtime.LabelService:       spec.Service,
		runtime.LabelVersionID:     strconv.FormatInt(spec.VersionID, 10),
		runtime.LabelVersionNumber: strconv.Itoa(spec.VersionNumber),
	}
}

// selector picks a version's pods: the owner and the version ID, which no
// other installation's or version's pods share.
func (k *Kube) selector(spec runtime.InstanceSpec) map[string]string {
	return map[string]string{
		runtime.LabelManaged:   "true",
		runtime.LabelOwner:     k.cfg.Owner,
		runtime.LabelVersionID: strconv.FormatInt(spec.VersionID, 10),
	}
}

// deploymentApply is the Deployment of a version as Wisp applies it. It
// leaves out spec.replicas, which the scale subresource owns: Start and
// Stop change it, and an apply that named it would undo their changes.
func (k *Kube) deploymentApply(spec runtime.InstanceSpec) *appsv1ac.DeploymentApplyConfiguration {
	port := int32(spec.Port) //nolint:gosec // G115: core bounds ports to 1–65535
	env := []*corev1ac.EnvVarApplyConfiguration{}
	hasPort := false
	for _, kv := range spec.Env {
		key, val, _ := strings.Cut(kv, "=")
		hasPort = hasPort || key == "PORT"
		env = append(env, corev1ac.EnvVar().WithName(key).WithValue(val))
	}
	if !hasPort {
		env = append(env, corev1ac.EnvVar().WithName("PORT").WithValue(strconv.Itoa(spec.Port)))
	}
	c := corev1ac.Container().
		WithName(containerName).
		WithImage(spec.Image).
		WithImagePullPolicy(corev1.PullIfNotPresent). // pinned by digest: present means the same
		WithEnv(env...).
		WithPorts(corev1ac.ContainerPort().WithName("http").WithContainerPort(port).WithProtocol(corev1.ProtocolTCP)).
		WithReadinessProbe(readinessProbe(spec, port)).
		WithSecurityContext(corev1ac.SecurityContext().
			WithAllowPrivilegeEscalation(false).
			WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))).
		// The end of the output becomes the termination message of a
		// process that fails, so a crash explains itself in the status.
		WithTerminationMessagePolicy(corev1.TerminationMessageFallbackToLogsOnError)
	if len(spec.Command) > 0 {
		c.WithCommand(spec.Command...)
	}
	if len(spec.Args) > 0 {
		c.WithArgs(spec.Args...)
	}
	if res := resources(spec); len(res) > 0 {
		c.WithResources(corev1ac.ResourceRequirements().WithLimits(res).WithRequests(res))
	}
	grace := int64(k.cfg.StopGrace.Seconds())
	podLabels := k.versionLabels(spec)
	podLabels[runtime.LabelInstance] = "" // unclaimed; Start claims it
	pod := corev1ac.PodSpec().
		WithContainers(c).
		WithEnableServiceLinks(false).           // no service environment variables
		WithAutomountServiceAccountToken(false). // instances do not talk to the API server
		WithTerminationGracePeriodSeconds(grace)
	if k.cfg.ImagePullSecret != "" {
		pod.WithImagePullSecrets(corev1ac.LocalObjectReference().WithName(k.cfg.ImagePullSecret))
	}
	name := specName(spec)
	d := appsv1ac.Deployment(name, k.ns).
		WithLabels(k.versionLabels(spec)).
		WithSpec(appsv1ac.DeploymentSpec().
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(k.selector(spec))).
			// The template never changes for a version: no history.
			WithRevisionHistoryLimit(0).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(podLabels).
				WithAnnotations(map[string]string{annotationDeletionCost: costUnclaimed}).
				WithSpec(pod)))
	d.WithAnnotations(map[string]string{annotationTemplate: templateHash(d)})
	return d
}

// readinessProbe is the kubelet's readiness probe: the readiness path over
// HTTP, else a TCP connect to the port, as often as the kubelet allows
// (once a second; see WaitReady for how a start avoids waiting for it).
func readinessProbe(spec runtime.InstanceSpec, port int32) *corev1ac.ProbeApplyConfiguration {
	p := corev1ac.Probe().WithPeriodSeconds(1).WithInitialDelaySeconds(0).WithTimeoutSeconds(1).
		WithSuccessThreshold(1).WithFailureThreshold(3)
	if spec.ReadinessPath != "" {
		return p.WithHTTPGet(corev1ac.HTTPGetAction().WithPath(spec.ReadinessPath).WithPort(intstr.FromInt32(port)))
	}
	return p.WithTCPSocket(corev1ac.TCPSocketAction().WithPort(intstr.FromInt32(port)))
}

// resources are the limits of an instance, requested as well: a pod gets
// what it may use, so the scheduler never places more than fits.
func resources(spec runtime.InstanceSpec) corev1.ResourceList {
	res := corev1.ResourceList{}
	if spec.MemoryLimit > 0 {
		res[corev1.ResourceMemory] = *resource.NewQuantity(spec.MemoryLimit, resource.BinarySI)
	}
	if spec.CPULimit > 0 {
		res[corev1.ResourceCPU] = *resource.NewMilliQuantity(int64(spec.CPULimit*1000+0.5), resource.DecimalSI)
	}
	return res
}

// templateHash hashes an apply configuration without its hash annotation.
func templateHash(d *appsv1ac.DeploymentApplyConfiguration) string {
	b, _ := json.Marshal(d.Spec)
	l, _ := json.Marshal(d.Labels)
	sum := sha256.Sum256(append(b, l...))
	return hex.EncodeToString(sum[:8])
}

// deploymentObject turns the apply configuration into the object Create
// takes, with 0 replicas. (The two share their JSON form.)
func deploymentObject(ac *appsv1ac.DeploymentApplyConfiguration) (*appsv1.Deployment, error) {
	b, err := json.Marshal(ac)
	if err != nil {
		return nil, err
	}
	var d appsv1.Deployment
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("deployment object: %w", err)
	}
	zero := int32(0)
	d.Spec.Replicas = &zero
	return &d, nil
}

// serviceApply is the ClusterIP Service of a version, so `kubectl get svc`
// shows it and cluster tools can reach it; Wisp's router dials pod
// addresses directly. The EndpointSlice controller copies its labels onto
// the slices, which is how the slice informer finds them.
func (k *Kube) serviceApply(spec runtime.InstanceSpec) *corev1ac.ServiceApplyConfiguration {
	port := int32(spec.Port) //nolint:gosec // G115: core bounds ports to 1–65535
	return corev1ac.Service(specName(spec), k.ns).
		WithLabels(k.versionLabels(spec)).
		WithSpec(corev1ac.ServiceSpec().
			WithType(corev1.ServiceTypeClusterIP).
			WithSelector(k.selector(spec)).
			WithPorts(corev1ac.ServicePort().WithName("http").WithPort(port).
				WithTargetPort(intstr.FromInt32(port)).WithProtocol(corev1.ProtocolTCP)))
}
