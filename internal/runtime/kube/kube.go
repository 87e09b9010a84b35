package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime"
)

var (
	_ runtime.Runtime         = (*Kube)(nil)
	_ runtime.ReadinessWaiter = (*Kube)(nil)
	_ runtime.Watcher         = (*Kube)(nil)
	_ runtime.VersionRemover  = (*Kube)(nil)
	_ runtime.StreamMerger    = (*Kube)(nil)
	_ runtime.Shared          = (*Kube)(nil)
)

// Config configures the Kubernetes runtime.
type Config struct {
	// Kubeconfig is the path of a kubeconfig file; "" means $KUBECONFIG,
	// then ~/.kube/config, then the in-cluster configuration of a pod.
	Kubeconfig string
	// Namespace holds the Deployments, Services and pods; "" means the
	// kubeconfig context's namespace (in a pod: the pod's own), else
	// "default".
	Namespace string
	// Owner identifies this Wisp installation: its objects are labelled
	// with it and it sees only those. Required.
	Owner string
	// ImagePullSecret names a Secret of type kubernetes.io/dockerconfigjson
	// in Namespace that the pods pull with; "" means none.
	ImagePullSecret string
	// PullAuth, when it has a user or password and ImagePullSecret is "",
	// is a registry login the adapter keeps as a dockerconfigjson Secret
	// (wisp-<owner>-registry) and gives the pods as their pull secret:
	// how the nodes pull what builds push to --registry.
	PullAuth runtime.RegistryAuth
	// InsecureRegistries are registries (host[:port]) that ResolveImage
	// reaches over plain HTTP. Loopback and private addresses need not be
	// listed: they are reached over HTTP anyway.
	InsecureRegistries []string
	// Keychain gives ResolveImage its registry credentials; nil means the
	// Docker config of this user (~/.docker/config.json).
	Keychain authn.Keychain
	// StopGrace is the pods' termination grace period: the time between
	// SIGTERM and SIGKILL when the ReplicaSet removes one. Default 10s.
	StopGrace time.Duration
	// ProbeInterval is how often the adapter probes a starting pod's port
	// itself (see WaitReady). Default 20ms.
	ProbeInterval time.Duration
	// UnschedulableGrace is how long a pod may stay unschedulable before a
	// start fails with the scheduler's message: room can come free as other
	// pods end. Default 3s.
	UnschedulableGrace time.Duration
	// OrphanAge is how long a pod may stay unclaimed before List claims it
	// for adoption (a start that died between scaling up and claiming
	// leaves one). Default 30s.
	OrphanAge time.Duration
	// Logger receives the runtime's log lines.
	Logger *slog.Logger
}

// Validate fills defaults and checks the configuration.
func (c *Config) Validate() error {
	if c.Owner == "" {
		return errors.New("kube: an owner ID is required")
	}
	if errs := validation.IsValidLabelValue(c.Owner); len(errs) > 0 {
		return fmt.Errorf("kube: owner ID %q is not a valid label value: %s", c.Owner, strings.Join(errs, "; "))
	}
	if c.StopGrace == 0 {
		c.StopGrace = 10 * time.Second
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = 20 * time.Millisecond
	}
	if c.UnschedulableGrace == 0 {
		c.UnschedulableGrace = 3 * time.Second
	}
	if c.OrphanAge == 0 {
		c.OrphanAge = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Keychain == nil {
		c.Keychain = authn.DefaultKeychain
	}
	if c.StopGrace < 0 || c.ProbeInterval < 0 || c.UnschedulableGrace < 0 || c.OrphanAge < 0 {
		return errors.New("kube: durations must not be negative")
	}
	return nil
}

// Kube is the Kubernetes runtime.
type Kube struct {
	cfg    Config
	cs     kubernetes.Interface
	ns     string
	server string // the API server's address, for messages
	log    *slog.Logger

	factory     informers.SharedInformerFactory
	life        context.Context // until Close: the informers and background writes
	stopInform  context.CancelFunc
	pods        cache.SharedIndexInformer
	deployments appslisters.DeploymentLister
	depInformer cache.SharedIndexInformer
	slices      cache.SharedIndexInformer

	changes notifier
	// probe checks once whether a pod's address answers (probeOnce).
	probe func(ctx context.Context, addr, path string) error

	mu sync.Mutex
	// stopping: instances this process is stopping, so their pods'
	// deletion is expected (no tombstone, no reclaim).
	stopping map[string]bool
	// gone: claimed pods deleted without a Stop of ours (by hand, by an
	// eviction, or by the ReplicaSet picking it for another scale-down): a
	// Stop of the instance still owes the Deployment a replica.
	gone map[string]tombstone
	// busy: starts and stops in flight in this process, by Deployment;
	// the last to end settles its replicas (settle in stop.go).
	busy map[string]int
	// marked: pods Stops of this process marked for removal (stop.go).
	marked map[string]time.Time
	// ensured: Deployments this process created or found for a version,
	// by name, with that version's ID.
	ensured map[string]int64
	ensure  sync.Map // name → *sync.Mutex: one ensure at a time per name

	// splitLogs: the cluster returns stdout and stderr apart (logs.go).
	splitLogs atomic.Bool
}

type tombstone struct {
	deployment string
	at         time.Time
}

// Indexes of the pod informer.
const (
	byInstance = "instance"
	byVersion  = "version"
	byService  = "service" // EndpointSlices by their Service's name
)

// Open connects to the cluster the configuration names, checks that this
// installation may use its namespace, and starts the informers.
func Open(ctx context.Context, cfg Config) (*Kube, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = cfg.Kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	rc, err := cc.ClientConfig()
	if err != nil {
		return nil, core.Unavailablef("kube: no cluster configuration: %v (give --kubeconfig, set KUBECONFIG, or run in a pod)", err)
	}
	if cfg.Namespace == "" {
		if cfg.Namespace, _, err = cc.Namespace(); err != nil || cfg.Namespace == "" {
			cfg.Namespace = "default"
		}
	}
	rc.UserAgent = "wisp"
	// The defaults (5 requests a second, bursts of 10) throttle a burst of
	// scale-ups; the API server has its own flow control.
	rc.QPS, rc.Burst = 50, 100
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kube: client for %s: %w", rc.Host, err)
	}
	return start(ctx, cfg, cs, rc.Host)
}

// start checks access and starts the informers; Open and the tests call it.
func start(ctx context.Context, cfg Config, cs kubernetes.Interface, server string) (*Kube, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	k := &Kube{
		cfg: cfg, cs: cs, ns: cfg.Namespace, server: server,
		log:      cfg.Logger.With("component", "kube", "namespace", cfg.Namespace),
		stopping: map[string]bool{}, gone: map[string]tombstone{}, ensured: map[string]int64{},
		marked: map[string]time.Time{}, busy: map[string]int{}, probe: probeOnce,
	}
	if k.ns == "" {
		k.ns = "default"
	}
	k.changes.init()
	if err := k.checkAccess(ctx); err != nil {
		return nil, err
	}
	if err := k.ensurePullSecret(ctx); err != nil {
		return nil, err
	}
	k.detectSplit(ctx)
	sel := labels.Set{runtime.LabelManaged: "true", runtime.LabelOwner: cfg.Owner}.String()
	k.factory = informers.NewSharedInformerFactoryWithOptions(cs, 0,
		informers.WithNamespace(k.ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = sel }))
	k.pods = k.factory.Core().V1().Pods().Informer()
	dep := k.factory.Apps().V1().Deployments()
	k.depInformer, k.deployments = dep.Informer(), dep.Lister()
	k.slices = k.factory.Discovery().V1().EndpointSlices().Informer()
	if err := k.pods.AddIndexers(cache.Indexers{
		byInstance: func(obj any) ([]string, error) {
			if p, ok := obj.(*corev1.Pod); ok && p.Labels[runtime.LabelInstance] != "" {
				return []string{p.Labels[runtime.LabelInstance]}, nil
			}
			return nil, nil
		},
		byVersion: func(obj any) ([]string, error) {
			if p, ok := obj.(*corev1.Pod); ok {
				return []string{p.Labels[runtime.LabelVersionID]}, nil
			}
			return nil, nil
		},
	}); err != nil {
		return nil, fmt.Errorf("kube: pod index: %w", err)
	}
	if err := k.slices.AddIndexers(cache.Indexers{byService: func(obj any) ([]string, error) {
		if s, ok := obj.(*discoveryv1.EndpointSlice); ok {
			return []string{s.Labels[discoveryv1.LabelServiceName]}, nil
		}
		return nil, nil
	}}); err != nil {
		return nil, fmt.Errorf("kube: endpoint slice index: %w", err)
	}
	wake := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { k.changes.notify() },
		UpdateFunc: func(any, any) { k.changes.notify() },
		DeleteFunc: func(any) { k.changes.notify() },
	}
	for _, inf := range []cache.SharedIndexInformer{k.pods, k.depInformer, k.slices} {
		if _, err := inf.AddEventHandler(wake); err != nil {
			return nil, fmt.Errorf("kube: informer handler: %w", err)
		}
	}
	if _, err := k.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: k.podDeleted}); err != nil {
		return nil, fmt.Errorf("kube: informer handler: %w", err)
	}
	// The informers run until Close, not until the ctx of Open ends.
	ictx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	k.life, k.stopInform = ictx, cancel
	k.factory.Start(ictx.Done())
	sctx, scancel := context.WithTimeout(ctx, time.Minute)
	defer scancel()
	for typ, ok := range k.factory.WaitForCacheSync(sctx.Done()) {
		if !ok {
			k.Close()
			return nil, core.Unavailablef("kube: the %v cache of namespace %s at %s did not fill within a minute", typ, k.ns, server)
		}
	}
	k.log.Info("kubernetes runtime ready", "server", server, "owner", cfg.Owner)
	return k, nil
}

// checkAccess lists each kind of object the runtime uses once, so that a
// missing permission or an unreachable server is a start-up error that
// says which, not an informer retrying forever.
func (k *Kube) checkAccess(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	one := metav1.ListOptions{Limit: 1}
	checks := []struct {
		what string
		list func() error
	}{
		{"deployments", func() error { _, err := k.cs.AppsV1().Deployments(k.ns).List(ctx, one); return err }},
		{"pods", func() error { _, err := k.cs.CoreV1().Pods(k.ns).List(ctx, one); return err }},
		{"services", func() error { _, err := k.cs.CoreV1().Services(k.ns).List(ctx, one); return err }},
		{"endpointslices", func() error {
			_, err := k.cs.DiscoveryV1().EndpointSlices(k.ns).List(ctx, one)
			return err
		}},
	}
	for _, c := range checks {
		if err := c.list(); err != nil {
			return core.Unavailablef("kube: cannot list %s in namespace %s at %s: %v (is the API server up, and may this identity use the namespace?)",
				c.what, k.ns, k.server, err)
		}
	}
	return nil
}

// Close stops the informers.
func (k *Kube) Close() error {
	k.stopInform()
	k.factory.Shutdown()
	return nil
}

// Namespace is the namespace the runtime works in.
func (k *Kube) Namespace() string { return k.ns }

// podDeleted records a tombstone for a claimed pod that went away without
// a Stop of ours.
func (k *Kube) podDeleted(obj any) {
	p := podOf(obj)
	if p == nil {
		return
	}
	id := p.Labels[runtime.LabelInstance]
	if id == "" || k.podOfInstance(id) != nil || k.wasMarked(p.Name) { // a reclaimed replacement lives on, or a Stop of ours removed it
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopping[id] {
		return
	}
	now := time.Now()
	for gid, t := range k.gone {
		if now.Sub(t.at) > 10*time.Minute { // never stopped: forget it
			delete(k.gone, gid)
		}
	}
	k.gone[id] = tombstone{deployment: objectName(p.Labels[runtime.LabelService], p.Labels[runtime.LabelVersionNumber]), at: now}
}

// podOf returns the pod of an informer object, tombstones included.
func podOf(obj any) *corev1.Pod {
	switch o := obj.(type) {
	case *corev1.Pod:
		return o
	case cache.DeletedFinalStateUnknown:
		p, _ := o.Obj.(*corev1.Pod)
		return p
	}
	return nil
}

// notifier wakes every waiter when an informer reports a change: a waiter
// takes the channel, checks the cache, and waits for the channel to close.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func (n *notifier) init() { n.ch = make(chan struct{}) }

// wait returns a channel closed at the next change.
func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ch
}

func (n *notifier) notify() {
	n.mu.Lock()
	close(n.ch)
	n.ch = make(chan struct{})
	n.mu.Unlock()
}

// podsOfVersion returns the cached pods of a version.
func (k *Kube) podsOfVersion(versionID string) []*corev1.Pod {
	objs, _ := k.pods.GetIndexer().ByIndex(byVersion, versionID)
	out := make([]*corev1.Pod, 0, len(objs))
	for _, o := range objs {
		if p, ok := o.(*corev1.Pod); ok {
			out = append(out, p)
		}
	}
	return out
}

// podOfInstance returns the cached pod claimed by instance id, preferring
// one that is not being deleted; nil when there is none.
func (k *Kube) podOfInstance(id string) *corev1.Pod {
	objs, _ := k.pods.GetIndexer().ByIndex(byInstance, id)
	var found *corev1.Pod
	for _, o := range objs {
		p, ok := o.(*corev1.Pod)
		if !ok {
			continue
		}
		if found == nil || (found.DeletionTimestamp != nil && p.DeletionTimestamp == nil) {
			found = p
		}
	}
	return found
}

// deployment returns the cached Deployment name, or nil.
func (k *Kube) deployment(name string) *appsv1.Deployment {
	d, err := k.deployments.Deployments(k.ns).Get(name)
	if err != nil {
		return nil
	}
	return d
}
