// Package e2e runs Wisp end to end on the test cluster (scripts/kube/up.sh):
// two real `wisp serve` processes, --runtime kubernetes, sharing one
// PostgreSQL database and one namespace, driven over HTTP. make test-kube
// runs it; without a cluster it skips and says why.
package e2e

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/wisp-run/wisp/internal/apiclient"
	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime/docker/dockertest"
	"github.com/wisp-run/wisp/internal/runtime/kube/kubetest"
	"github.com/wisp-run/wisp/internal/store/postgres/pgtest"
)

var pg pgtest.Server

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

// replica is one wisp serve process.
type replica struct {
	t      *testing.T
	token  string
	name   string
	admin  string
	router string
	c      *apiclient.Client
	cmd    *exec.Cmd
	log    string
}

// cluster is two replicas sharing a store and a namespace.
type cluster struct {
	env      kubetest.Env
	cs       kubernetes.Interface
	ns       string
	greeter  string // the greeter image, pinned
	replicas []*replica
}

var (
	buildOnce sync.Once
	wispBin   string
	buildErr  error
)

func wispBinary(t *testing.T) string {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "wisp-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		wispBin = filepath.Join(dir, "wisp")
		cmd := exec.Command("go", "build", "-o", wispBin, "./cmd/wisp")
		cmd.Dir = "../../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build wisp: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return wispBin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// newCluster starts n replicas on a fresh namespace and database; extra
// flags go to every replica.
func newCluster(t *testing.T, n int, extra ...string) *cluster {
	t.Helper()
	env := kubetest.Skip(t)
	cs, err := env.Client()
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{env: env, cs: cs, ns: kubetest.Namespace(t, env)}
	c.greeter = kubetest.MustPushGoImage(t, "./testdata/greeter", env.Registry+"/e2e/greeter:1", 8080)
	dsn := pg.Database(t)
	bin := wispBinary(t)
	tok := make([]byte, 24)
	_, _ = crand.Read(tok)
	token := hex.EncodeToString(tok)
	for i := range n {
		r := &replica{t: t, name: fmt.Sprintf("replica-%d", i), admin: freeAddr(t), router: freeAddr(t), token: token}
		r.log = filepath.Join(t.TempDir(), r.name+".log")
		args := append([]string{"serve", "--runtime", "kubernetes", "--kubeconfig", env.Kubeconfig, "--kube-namespace", c.ns,
			"--store", dsn, "--replica-id", r.name, "--admin-addr", r.admin, "--addr", r.router, "--admin-token", token,
			"--data-dir", t.TempDir(), "--reap-interval", "200ms", "--stop-grace", "2s"}, extra...)
		if !slices.Contains(extra, "--builder") {
			args = append(args, "--builder", "none")
		}
		r.start(bin, args)
		r.c = apiclient.New(r.admin, token)
		c.replicas = append(c.replicas, r)
	}
	t.Cleanup(func() {
		for _, r := range c.replicas {
			r.kill(syscall.SIGTERM)
		}
	})
	return c
}

func (r *replica) start(bin string, args []string) {
	f, err := os.Create(r.log)
	if err != nil {
		r.t.Fatal(err)
	}
	r.cmd = exec.Command(bin, args...)
	r.cmd.Stdout, r.cmd.Stderr = f, f
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get("http://" + r.admin + "/healthz")
		if err == nil {
			_ = resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(r.log)
			r.t.Fatalf("%s did not start within 30s:\n%s", r.name, out)
		}
	}
}

// kill signals the process and waits for it (SIGKILL: a crash).
func (r *replica) kill(sig syscall.Signal) {
	if r.cmd == nil || r.cmd.ProcessState != nil {
		return
	}
	_ = r.cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = r.cmd.Process.Kill()
		<-done
	}
}

func (r *replica) dumpLog(t *testing.T) {
	out, _ := os.ReadFile(r.log)
	t.Logf("%s log:\n%s", r.name, out)
}

// leader returns the replica that leads, waiting up to within for one.
func (c *cluster) leader(t *testing.T, within time.Duration) (*replica, time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		for _, r := range c.replicas {
			if r.cmd.ProcessState != nil {
				continue
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			info, err := r.c.Info(ctx)
			cancel()
			if err == nil && info.Leader {
				return r, time.Since(start)
			}
		}
		if time.Since(start) > within {
			t.Fatalf("no replica leads after %v", within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type answer struct {
	status int
	body   string
	err    error
}

var hc = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 100}}

func get(ctx context.Context, r *replica, service, path string) answer {
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+r.router+path, nil)
	req.Host = service + ".localhost"
	resp, err := hc.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, body: string(b)}
}

func (c *cluster) pods(t *testing.T) int {
	list, err := c.cs.CoreV1().Pods(c.ns).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			n++
		}
	}
	return n
}

// TestKubeSeedWalkthrough: three versions of one image told apart by
// GREETING, weights 10/30/60, 1,000 requests through both replicas'
// routers, each share within ±4 points; then scale to zero and back.
func TestKubeSeedWalkthrough(t *testing.T) {
	c := newCluster(t, 2)
	ctx := t.Context()
	lead, _ := c.leader(t, 15*time.Second)
	idle := core.Duration(2 * time.Second)
	if _, err := lead.c.CreateService(ctx, "seed", core.PolicyPatch{IdleTimeout: &idle}); err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{"Ten", "Thirty", "Sixty"} {
		if _, err := lead.c.CreateVersion(ctx, "seed", core.VersionSpec{Image: c.greeter, Port: 8080, Env: []string{"GREETING=" + g}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.replicas[1].c.SetTraffic(ctx, "seed", core.Traffic{Weights: []core.Weight{{Version: 1, Percent: 10}, {Version: 2, Percent: 30}, {Version: 3, Percent: 60}}}); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var failed atomic.Int32
	const total, workers = 1000, 10
	for w := range workers {
		wg.Go(func() {
			for i := w; i < total; i += workers {
				a := get(ctx, c.replicas[i%2], "seed", "/")
				if a.err != nil || a.status != 200 {
					if failed.Add(1) <= 3 {
						t.Errorf("request %d: %d %q %v", i, a.status, a.body, a.err)
					}
					continue
				}
				mu.Lock()
				counts[strings.TrimSpace(a.body)]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d of %d requests failed", failed.Load(), total)
	}
	for g, want := range map[string]int{"Hello, Ten!": 10, "Hello, Thirty!": 30, "Hello, Sixty!": 60} {
		got := counts[g] * 100 / total
		if got < want-4 || got > want+4 {
			t.Errorf("%s: %d%% of requests, want %d±4 (counts %v)", g, got, want, counts)
		}
	}
	t.Logf("shares: %v", counts)

	// Scale to zero: no pods once idle; then a request brings one back.
	deadline := time.Now().Add(30 * time.Second)
	for c.pods(t) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d pods left 30s after the last request (idle timeout 2s)", c.pods(t))
		}
		time.Sleep(200 * time.Millisecond)
	}
	start := time.Now()
	if a := get(ctx, c.replicas[1], "seed", "/"); a.status != 200 {
		t.Fatalf("after scale to zero: %d %q %v", a.status, a.body, a.err)
	}
	t.Logf("scaled to zero; the next request through the follower answered in %v", time.Since(start))
}

// TestKubeBurst: 200 concurrent 100 ms requests to a version with
// max_concurrency 10, through both replicas, scale it to at least 10 pods
// with no errors; deleting the version removes its Deployment.
func TestKubeBurst(t *testing.T) {
	c := newCluster(t, 2)
	ctx := t.Context()
	lead, _ := c.leader(t, 15*time.Second)
	// Room for the 20 instances the burst asks for (the default cap is 10),
	// so ≥ 10 is what the autoscaler reached, not the cap.
	maxInstances := 20
	if _, err := lead.c.CreateService(ctx, "burst", core.PolicyPatch{MaxInstances: &maxInstances}); err != nil {
		t.Fatal(err)
	}
	if _, err := lead.c.CreateVersion(ctx, "burst", core.VersionSpec{Image: c.greeter, Port: 8080, MaxConcurrency: 10}); err != nil {
		t.Fatal(err)
	}
	var peak atomic.Int32
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			if n := int32(c.pods(t)); n > peak.Load() {
				peak.Store(n)
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	var wg sync.WaitGroup
	var bad atomic.Int32
	for i := range 200 {
		wg.Go(func() {
			a := get(ctx, c.replicas[i%2], "burst", "/sleep?ms=100")
			if a.err != nil || a.status != 200 {
				if bad.Add(1) <= 3 {
					t.Errorf("request %d: %d %q %v", i, a.status, a.body, a.err)
				}
			}
		})
	}
	wg.Wait()
	// The autoscaler may still be adding pods for the load it saw.
	time.Sleep(2 * time.Second)
	close(stop)
	<-watched
	if bad.Load() > 0 {
		t.Fatalf("%d of 200 requests failed", bad.Load())
	}
	if peak.Load() < 10 {
		t.Fatalf("the burst peaked at %d pods, want ≥ 10", peak.Load())
	}
	t.Logf("200 concurrent requests: no errors, peak %d pods", peak.Load())

	// Deleting a version removes its Deployment and leaves the others.
	if _, err := lead.c.CreateVersion(ctx, "burst", core.VersionSpec{Image: c.greeter, Port: 8080}); err != nil {
		t.Fatal(err)
	}
	if _, err := lead.c.SetTraffic(ctx, "burst", core.Traffic{Weights: []core.Weight{{Version: 2, Percent: 100}}}); err != nil {
		t.Fatal(err)
	}
	if a := get(ctx, lead, "burst", "/"); a.status != 200 {
		t.Fatalf("v2: %d %q %v", a.status, a.body, a.err)
	}
	if err := lead.c.DeleteVersion(ctx, "burst", 1); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		deps, err := c.cs.AppsV1().Deployments(c.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		names := []string{}
		for _, d := range deps.Items {
			names = append(names, d.Name)
		}
		if slices.Equal(names, []string{"burst-v2"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30s after deleting v1 the Deployments are %v, want [burst-v2]", names)
		}
	}

	if err := lead.c.DeleteService(ctx, "burst"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		deps, err := c.cs.AppsV1().Deployments(c.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(deps.Items) == 0 && c.pods(t) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30s after the delete: %d Deployments, %d pods left", len(deps.Items), c.pods(t))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestKubeLeaderKilled: the leader is killed with SIGKILL mid-burst; the
// other replica leads within 15 s, and every request sent through it
// succeeds.
func TestKubeLeaderKilled(t *testing.T) {
	c := newCluster(t, 2)
	ctx := t.Context()
	lead, _ := c.leader(t, 15*time.Second)
	var follower *replica
	for _, r := range c.replicas {
		if r != lead {
			follower = r
		}
	}
	if _, err := lead.c.CreateService(ctx, "steady", core.PolicyPatch{}); err != nil {
		t.Fatal(err)
	}
	if _, err := lead.c.CreateVersion(ctx, "steady", core.VersionSpec{Image: c.greeter, Port: 8080, MaxConcurrency: 4}); err != nil {
		t.Fatal(err)
	}
	// The follower follows the leader's writes through the change feed
	// (LISTEN/NOTIFY): within a second.
	written := time.Now()
	for {
		a := get(ctx, follower, "steady", "/")
		if a.status == 200 {
			break
		}
		if time.Since(written) > time.Second+500*time.Millisecond { // plus the cold start
			t.Fatalf("the follower does not serve the leader's new version: %d %q %v", a.status, a.body, a.err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var sent, failed atomic.Int32
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				sent.Add(1)
				if a := get(ctx, follower, "steady", "/sleep?ms=50"); a.err != nil || a.status != 200 {
					if failed.Add(1) <= 3 {
						t.Errorf("through the follower: %d %q %v", a.status, a.body, a.err)
					}
				}
			}
		})
	}
	time.Sleep(2 * time.Second)
	lead.kill(syscall.SIGKILL)
	killed := time.Now()
	newLead, _ := c.leader(t, 20*time.Second)
	took := time.Since(killed)
	time.Sleep(3 * time.Second) // the new leader runs the loops while load goes on
	close(stop)
	wg.Wait()
	if newLead != follower {
		t.Fatalf("the new leader is %s", newLead.name)
	}
	if took > 15*time.Second {
		t.Fatalf("the follower led %v after the kill, want within 15s", took)
	}
	if failed.Load() > 0 {
		follower.dumpLog(t)
		t.Fatalf("%d of %d requests through the follower failed", failed.Load(), sent.Load())
	}
	t.Logf("leader killed: the follower led after %v; %d requests through it, none failed", took.Round(100*time.Millisecond), sent.Load())
}

// TestKubeBadInput: an image that does not exist, a crash-looping image and
// a pod that cannot be scheduled each get a clear answer naming the cause
// within 10 s, and nothing is left once the versions are deleted.
func TestKubeBadInput(t *testing.T) {
	c := newCluster(t, 2)
	ctx := t.Context()
	lead, _ := c.leader(t, 15*time.Second)
	if _, err := lead.c.CreateService(ctx, "bad", core.PolicyPatch{}); err != nil {
		t.Fatal(err)
	}
	// A missing image is refused when the version is created.
	missing := c.env.Registry + "/e2e/no-such-image:1"
	_, err := lead.c.CreateVersion(ctx, "bad", core.VersionSpec{Image: missing, Port: 8080})
	if err == nil || !strings.Contains(err.Error(), "no-such-image") {
		t.Fatalf("a version of a missing image: %v, want an error naming the image", err)
	}
	for _, tc := range []struct {
		name string
		spec core.VersionSpec
		want string
	}{
		{"crash loop", core.VersionSpec{Image: c.greeter, Port: 8080, Env: []string{"EXIT_CODE=3"}}, "code 3"},
		{"unschedulable", core.VersionSpec{Image: c.greeter, Port: 8080, MemoryLimit: 1 << 40}, "Insufficient memory"},
	} {
		v, err := lead.c.CreateVersion(ctx, "bad", tc.spec)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if _, err := lead.c.SetTraffic(ctx, "bad", core.Traffic{Weights: []core.Weight{{Version: v.Number, Percent: 100}}}); err != nil {
			t.Fatal(err)
		}
		for _, r := range c.replicas {
			start := time.Now()
			a := get(ctx, r, "bad", "/")
			took := time.Since(start)
			if a.status != 503 || !strings.Contains(a.body, tc.want) || took > 10*time.Second {
				t.Errorf("%s through %s: %d %q after %v, want a 503 naming %q within 10s", tc.name, r.name, a.status, a.body, took, tc.want)
			}
		}
		// Asked again at once, it answers from the backoff, without a new start.
		start := time.Now()
		if a := get(ctx, lead, "bad", "/"); a.status != 503 || time.Since(start) > time.Second {
			t.Errorf("%s again: %d after %v, want a fast 503 from the backoff", tc.name, a.status, time.Since(start))
		}
	}
	if err := lead.c.DeleteService(ctx, "bad"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		deps, err := c.cs.AppsV1().Deployments(c.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		svcs, err := c.cs.CoreV1().Services(c.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(deps.Items) == 0 && len(svcs.Items) == 0 && c.pods(t) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30s after the delete: %d Deployments, %d Services, %d pods left", len(deps.Items), len(svcs.Items), c.pods(t))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestKubeDeployFromSource: wisp deploy builds a directory with the Docker
// Engine, pushes the image to the cluster's registry, and the pod pulls it
// by digest.
func TestKubeDeployFromSource(t *testing.T) {
	dockertest.Skip(t)
	env := kubetest.Skip(t)
	dockertest.MustBuildGoImage(t, "./testdata/greeter", "wisp-greeter:e2e")
	c := newCluster(t, 1, "--builder", "docker", "--registry", env.Registry+"/e2e-built")
	ctx := t.Context()
	r := c.replicas[0]
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "Dockerfile"), []byte("FROM wisp-greeter:e2e\nENV GREETING=Built\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, wispBinary(t), "deploy", "built", src)
	cmd.Env = append(os.Environ(), "WISP_SERVER=http://"+r.admin, "WISP_TOKEN="+r.token)
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.dumpLog(t)
		t.Fatalf("wisp deploy: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "pushed "+env.Registry+"/e2e-built/built@sha256:") {
		t.Fatalf("wisp deploy did not report the push:\n%s", out)
	}
	v, err := r.c.GetVersion(ctx, "built", 1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v.ImageID, env.Registry+"/e2e-built/built@sha256:") {
		t.Fatalf("the version pins %q, want the pushed digest in %s", v.ImageID, env.Registry)
	}
	if a := get(ctx, r, "built", "/"); a.status != 200 || strings.TrimSpace(a.body) != "Hello, Built!" {
		t.Fatalf("the built version answers %d %q %v", a.status, a.body, a.err)
	}
	pods, err := c.cs.CoreV1().Pods(c.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) == 0 || pods.Items[0].Spec.Containers[0].Image != v.ImageID {
		t.Fatalf("the pod does not run the pinned digest %s: %+v", v.ImageID, pods.Items)
	}
}
