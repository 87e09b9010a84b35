// Command kube measures a cold start on Kubernetes, request to first byte,
// through Wisp against the same image's Deployment created by hand, in one
// run on the test cluster (scripts/kube/up.sh):
//
//   - by hand: create a Deployment of one replica (readiness probe every
//     second, the shortest Kubernetes allows), wait until its endpoint is
//     ready in the EndpointSlice of its Service, then GET the pod; the
//     clock runs from the create to the first byte;
//   - Wisp: the first request to a version scaled to zero, through Wisp's
//     router (the daemon runs in this process with --runtime kubernetes);
//     the clock runs from the request to the first byte.
//
// Both pull nothing: the image is on the node after the first, uncounted,
// start. Run it with make bench-kube.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/wisp-run/wisp/internal/apiclient"
	"github.com/wisp-run/wisp/internal/config"
	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/daemon"
	"github.com/wisp-run/wisp/internal/runtime/kube/kubetest"
)

func main() {
	n := flag.Int("n", 15, "cold starts per row")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *n); err != nil {
		fmt.Fprintln(os.Stderr, "bench-kube:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, n int) error {
	env, err := kubetest.Find()
	if err != nil {
		return err
	}
	cs, err := env.Client()
	if err != nil {
		return err
	}
	fmt.Println("pushing the greeter image (static Go binary, one layer) to the cluster's registry…")
	img, err := kubetest.PushGoImage(ctx, "./testdata/greeter", env.Registry+"/bench/greeter:1", 8080)
	if err != nil {
		return err
	}
	ns, cleanup, err := namespace(ctx, cs)
	if err != nil {
		return err
	}
	defer cleanup()
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}

	fmt.Printf("measuring %d cold starts per row, one at a time, in namespace %s…\n", n, ns)
	bare, err := sample(n+1, func() (time.Duration, error) { return byHand(ctx, cs, hc, ns, img) })
	if err != nil {
		return fmt.Errorf("by hand: %w", err)
	}
	bare = bare[1:] // the first one pulled the image
	fmt.Printf("  %-44s p50 %7.1f ms\n", "Deployment by hand: create → Ready → first byte", ms(p(bare, 50)))

	w, err := startWisp(ctx, env, ns)
	if err != nil {
		return err
	}
	defer w.stop()
	zero, err := w.zeroStarts(ctx, hc, img)
	if err != nil {
		return err
	}
	wisp, err := sample(n, zero)
	if err != nil {
		return fmt.Errorf("wisp: %w", err)
	}
	fmt.Printf("  %-44s p50 %7.1f ms\n", "Wisp: request after scale to zero → first byte", ms(p(wisp, 50)))

	fmt.Printf("\nCold start on Kubernetes, request to first byte (%d runs each)\n", n)
	fmt.Printf("%-48s %9s %9s\n", "", "p50 ms", "p90 ms")
	fmt.Printf("%-48s %9.1f %9.1f\n", "Deployment by hand (create → Ready → request)", ms(p(bare, 50)), ms(p(bare, 90)))
	fmt.Printf("%-48s %9.1f %9.1f\n", "Wisp, after scale to zero", ms(p(wisp, 50)), ms(p(wisp, 90)))
	fmt.Printf("\nRatio Wisp / by hand: p50 %.2f, p90 %.2f   (aim: at most 1.00, and Wisp's p50 at most 1000 ms)\n",
		ratio(p(wisp, 50), p(bare, 50)), ratio(p(wisp, 90), p(bare, 90)))
	return nil
}

func sample(n int, f func() (time.Duration, error)) ([]time.Duration, error) {
	var out []time.Duration
	for range n {
		d, err := f()
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

func p(s []time.Duration, q int) time.Duration {
	s = append([]time.Duration(nil), s...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(len(s)-1)*q/100]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }

// namespace makes a namespace for the run and returns how to remove it.
func namespace(ctx context.Context, cs kubernetes.Interface) (string, func(), error) {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	ns := "wisp-bench-" + hex.EncodeToString(b)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return "", nil, err
	}
	cleanup := func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = cs.CoreV1().Namespaces().Delete(dctx, ns, metav1.DeleteOptions{})
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{}); err == nil {
			break
		} else if time.Now().After(deadline) {
			cleanup()
			return "", nil, fmt.Errorf("namespace %s has no default ServiceAccount: %w", ns, err)
		}
	}
	// The Service the hand-made Deployments are found through.
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "bare"}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"bench": "bare"},
		Ports:    []corev1.ServicePort{{Port: 8080, TargetPort: intstr.FromInt32(8080)}},
	}}
	if _, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		cleanup()
		return "", nil, err
	}
	return ns, cleanup, nil
}

// byHand creates a one-replica Deployment, waits for its ready endpoint,
// sends the first request, and removes it again (waiting until its
// endpoint is gone, so runs do not overlap).
func byHand(ctx context.Context, cs kubernetes.Interface, hc *http.Client, ns, img string) (time.Duration, error) {
	one := int32(1)
	labels := map[string]string{"bench": "bare"}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	name := "bare-" + hex.EncodeToString(b) // a foreground delete keeps the last one a while
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					EnableServiceLinks:            new(false),
					TerminationGracePeriodSeconds: new(int64(1)),
					Containers: []corev1.Container{{
						Name: "app", Image: img, ImagePullPolicy: corev1.PullIfNotPresent,
						Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(8080)}},
							PeriodSeconds: 1,
						},
					}},
				},
			},
		},
	}
	sel := metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=bare"}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		return 0, err
	}
	addr, err := waitSlices(wctx, cs, ns, sel, func(es []discoveryv1.EndpointSlice) (string, bool) {
		for i := range es {
			if a := readyAddr(&es[i]); a != "" {
				return a, true
			}
		}
		return "", false
	})
	if err != nil {
		return 0, fmt.Errorf("waiting for a ready endpoint: %w", err)
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+":8080/", nil)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	d := time.Since(start)
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("GET the pod: status %d", resp.StatusCode)
	}
	if err := cs.AppsV1().Deployments(ns).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: new(metav1.DeletePropagationForeground)}); err != nil {
		return 0, err
	}
	if _, err := waitSlices(wctx, cs, ns, sel, func(es []discoveryv1.EndpointSlice) (string, bool) {
		for _, e := range es {
			if len(e.Endpoints) > 0 {
				return "", false
			}
		}
		return "", true
	}); err != nil {
		return 0, fmt.Errorf("waiting for the hand-made pod to go: %w", err)
	}
	return d, nil
}

// waitSlices lists the EndpointSlices sel selects and watches them until
// done says so; a watch that breaks (the API server's watch cache can end
// one with "too large resource version") is started again from a new list.
func waitSlices(ctx context.Context, cs kubernetes.Interface, ns string, sel metav1.ListOptions,
	done func([]discoveryv1.EndpointSlice) (string, bool)) (string, error) {
	for {
		list, err := cs.DiscoveryV1().EndpointSlices(ns).List(ctx, sel)
		if err != nil {
			return "", err
		}
		if v, ok := done(list.Items); ok {
			return v, nil
		}
		opts := sel
		opts.ResourceVersion = list.ResourceVersion
		w, err := cs.DiscoveryV1().EndpointSlices(ns).Watch(ctx, opts)
		if err != nil {
			return "", err
		}
		items := map[string]discoveryv1.EndpointSlice{}
		for _, es := range list.Items {
			items[es.Name] = es
		}
	events:
		for {
			select {
			case ev, ok := <-w.ResultChan():
				if !ok {
					break events
				}
				es, isSlice := ev.Object.(*discoveryv1.EndpointSlice)
				if !isSlice {
					break events // an error: list and watch again
				}
				if ev.Type == "DELETED" {
					delete(items, es.Name)
				} else {
					items[es.Name] = *es
				}
				all := make([]discoveryv1.EndpointSlice, 0, len(items))
				for _, it := range items {
					all = append(all, it)
				}
				if v, ok := done(all); ok {
					w.Stop()
					return v, nil
				}
			case <-ctx.Done():
				w.Stop()
				return "", ctx.Err()
			}
		}
		w.Stop()
	}
}

func readyAddr(es *discoveryv1.EndpointSlice) string {
	for _, ep := range es.Endpoints {
		if ep.Conditions.Ready != nil && *ep.Conditions.Ready && len(ep.Addresses) > 0 {
			return ep.Addresses[0]
		}
	}
	return ""
}

type wisp struct {
	c      *apiclient.Client
	router string
	stop   func()
}

func startWisp(ctx context.Context, env kubetest.Env, ns string) (*wisp, error) {
	dir, err := os.MkdirTemp("", "wisp-bench-kube-")
	if err != nil {
		return nil, err
	}
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.AdminAddr, cfg.Addr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Runtime, cfg.Builder = config.RuntimeKubernetes, config.BuilderNone
	cfg.Kubeconfig, cfg.KubeNamespace = env.Kubeconfig, ns
	cfg.ReapInterval = 100 * time.Millisecond
	cfg.StopGrace = time.Second
	d, err := daemon.Open(ctx, cfg, slog.New(slog.DiscardHandler), daemon.Options{})
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(rctx) }()
	return &wisp{c: apiclient.New(d.AdminAddr().String(), d.Token()), router: d.RouterAddr().String(), stop: func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "bench-kube: wisp:", err)
		}
		_ = os.RemoveAll(dir)
	}}, nil
}

func (w *wisp) get(ctx context.Context, hc *http.Client) (time.Duration, string, error) {
	start := time.Now()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+w.router+"/", nil)
	req.Host = "bench.localhost"
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	d := time.Since(start)
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, "", fmt.Errorf("GET through Wisp: status %d: %s", resp.StatusCode, body)
	}
	return d, resp.Header.Get("Wisp-Cold-Start"), nil
}

// zeroStarts makes a service that scales to zero a second after its last
// request and returns a function that waits for zero and then times one
// request.
func (w *wisp) zeroStarts(ctx context.Context, hc *http.Client, img string) (func() (time.Duration, error), error) {
	idle := core.Duration(time.Second)
	if _, err := w.c.CreateService(ctx, "bench", core.PolicyPatch{IdleTimeout: &idle}); err != nil {
		return nil, err
	}
	if _, err := w.c.CreateVersion(ctx, "bench", core.VersionSpec{Image: img, Port: 8080}); err != nil {
		return nil, err
	}
	if _, _, err := w.get(ctx, hc); err != nil { // the first start; not counted
		return nil, err
	}
	return func() (time.Duration, error) {
		deadline := time.Now().Add(30 * time.Second)
		for {
			ins, err := w.c.Instances(ctx, "bench")
			if err != nil {
				return 0, err
			}
			if len(ins) == 0 {
				break
			}
			if time.Now().After(deadline) {
				return 0, fmt.Errorf("bench did not scale to zero within 30s")
			}
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(500 * time.Millisecond) // let the pod's removal settle
		d, cold, err := w.get(ctx, hc)
		if err == nil && cold == "" {
			err = fmt.Errorf("the request after scale to zero reported no cold start")
		}
		return d, err
	}, nil
}
