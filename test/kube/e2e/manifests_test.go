package e2e

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wisp-run/wisp/internal/apiclient"
	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime/kube/kubetest"
)

// podGateway is the host's address on the test cluster's pod bridge, where
// pods reach the apiserver and, in this test, Postgres.
const podGateway = "10.244.0.1"

// TestKubeManifests installs Wisp itself on the test cluster with
// deploy/kubernetes as a user would (kubectl apply -k), with Wisp's image
// built here and pushed to the cluster's registry: two replicas on one
// Postgres, one of them leads, and a function deployed through one
// replica's admin API answers through both routers.
func TestKubeManifests(t *testing.T) {
	env := kubetest.Skip(t)
	cs, err := env.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	kubectl := "kubectl"
	if kb := envFileValue(t, "WISP_KUBE_BIN"); kb != "" {
		kubectl = filepath.Join(kb, "kubectl")
	}
	apiPort := envFileValue(t, "WISP_KUBE_API_PORT")
	if apiPort == "" {
		t.Fatal("the cluster's env file names no WISP_KUBE_API_PORT (scripts/kube/up.sh writes it)")
	}

	// Wisp's image: the static binary, as make image builds it.
	// Wisp in a pod resolves image references itself, so they name the
	// registry as pods reach it.
	podRegistry := envFileValue(t, "WISP_KUBE_POD_REGISTRY")
	if podRegistry == "" {
		t.Fatal("the cluster's env file names no WISP_KUBE_POD_REGISTRY (scripts/kube/up.sh writes it)")
	}
	img := kubetest.MustPushGoImage(t, "./cmd/wisp", env.Registry+"/wisp:e2e", 8080)
	greeter := kubetest.MustPushGoImage(t, "./testdata/greeter", env.Registry+"/e2e/greeter:1", 8080)
	greeter = podRegistry + strings.TrimPrefix(greeter, env.Registry)

	// Postgres for pods: a proxy on the pod bridge's gateway to the test
	// server on loopback.
	dsn := pg.Database(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	pgAddr := u.Host
	u.Host = proxyForPods(t, func() (string, error) { return pgAddr, nil })
	podDSN := u.String()
	// NATS for pods, the same way: wisp-nats does not resolve here (no
	// CoreDNS), so the replicas dial a proxy on the gateway that forwards
	// to the NATS pod, wherever it runs. Until that pod is up the proxy
	// cuts every connection, and the replicas wait for NATS as they would
	// for a slow server.
	natsAddr := proxyForPods(t, func() (string, error) {
		p, err := cs.CoreV1().Pods("wisp").Get(ctx, "wisp-nats-0", metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		if p.Status.PodIP == "" {
			return "", errors.New("wisp-nats-0 has no address yet")
		}
		return net.JoinHostPort(p.Status.PodIP, "4222"), nil
	})

	// The install, as the README says, with the test cluster's
	// differences in an overlay: the image, where the apiserver and NATS
	// are (there is no kube-proxy, so Services do not route), and an
	// emptyDir for NATS's files (there is no StorageClass).
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	if err := os.CopyFS(base, os.DirFS("../../../deploy/kubernetes")); err != nil {
		t.Fatal(err)
	}
	tok := make([]byte, 24)
	_, _ = crand.Read(tok)
	token := hex.EncodeToString(tok)
	_, _ = crand.Read(tok)
	natsToken := hex.EncodeToString(tok)
	write(t, filepath.Join(base, "wisp.env"), "WISP_ADMIN_TOKEN="+token+"\nWISP_STORE="+podDSN+"\nWISP_NATS_TOKEN="+natsToken+"\n")
	repo, digest, _ := strings.Cut(img, "@")
	write(t, filepath.Join(dir, "kustomization.yaml"), fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [base]
images:
  - name: wisp
    newName: %s
    digest: %s
patches:
  - target: {kind: Deployment, name: wisp}
    patch: |-
      - op: add
        path: /spec/template/spec/containers/0/env/-
        value: {name: KUBERNETES_SERVICE_HOST, value: "%s"}
      - op: add
        path: /spec/template/spec/containers/0/env/-
        value: {name: KUBERNETES_SERVICE_PORT, value: "%s"}
      - op: test
        path: /spec/template/spec/containers/0/env/5/name
        value: WISP_NATS_URL
      - op: replace
        path: /spec/template/spec/containers/0/env/5/value
        value: nats://%s
  - target: {kind: StatefulSet, name: wisp-nats}
    patch: |-
      - op: remove
        path: /spec/volumeClaimTemplates
      - op: add
        path: /spec/template/spec/volumes
        value: [{name: data, emptyDir: {}}]
`, repo, digest, podGateway, apiPort, natsAddr))
	deleteNamespace := func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
		defer cancel()
		_ = cs.CoreV1().Namespaces().Delete(dctx, "wisp", metav1.DeleteOptions{})
		for dctx.Err() == nil {
			if _, err := cs.CoreV1().Namespaces().Get(dctx, "wisp", metav1.GetOptions{}); apierrors.IsNotFound(err) {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	deleteNamespace() // a run that died may have left it
	t.Cleanup(deleteNamespace)
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, kubectl, args...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+env.Kubeconfig)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("apply", "-k", dir)
	if out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", env.Kubeconfig, "-n", "wisp", "rollout", "status", "deployment/wisp", "--timeout=120s").CombinedOutput(); err != nil {
		logs, _ := exec.CommandContext(ctx, kubectl, "--kubeconfig", env.Kubeconfig, "-n", "wisp", "logs", "deployment/wisp", "--tail=40").CombinedOutput()
		t.Fatalf("rollout: %v\n%s\nlogs:\n%s", err, out, logs)
	}
	pods, err := cs.CoreV1().Pods("wisp").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=wisp"})
	if err != nil {
		t.Fatal(err)
	}
	var reps []*replica
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Status.PodIP != "" {
			reps = append(reps, &replica{name: p.Name, admin: p.Status.PodIP + ":8081", router: p.Status.PodIP + ":8080",
				c: apiclient.New(p.Status.PodIP+":8081", token)})
		}
	}
	if len(reps) != 2 {
		t.Fatalf("%d Wisp pods running, want 2", len(reps))
	}
	var lead *replica
	for deadline := time.Now().Add(20 * time.Second); lead == nil; time.Sleep(200 * time.Millisecond) {
		leaders := 0
		for _, r := range reps {
			info, err := r.c.Info(ctx)
			if err == nil && info.Leader {
				leaders++
				lead = r
			}
		}
		if leaders > 1 {
			t.Fatalf("%d replicas lead at once", leaders)
		}
		if lead == nil && time.Now().After(deadline) {
			t.Fatal("no Wisp replica leads 20s after the rollout")
		}
	}
	if _, err := lead.c.CreateService(ctx, "hello", core.PolicyPatch{}); err != nil {
		t.Fatal(err)
	}
	if _, err := lead.c.CreateVersion(ctx, "hello", core.VersionSpec{Image: greeter, Port: 8080, Env: []string{"GREETING=Cluster"}}); err != nil {
		t.Fatal(err)
	}
	for _, r := range reps {
		var a answer
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if a = get(ctx, r, "hello", "/"); a.status == 200 || time.Now().After(deadline) {
				break
			}
		}
		if a.status != 200 || strings.TrimSpace(a.body) != "Hello, Cluster!" {
			t.Fatalf("through %s's router: %d %q %v", r.name, a.status, a.body, a.err)
		}
	}
	// One NATS for both: a call taken by one replica is known to the other,
	// which may also be the one that runs it.
	follower := reps[0]
	if follower == lead {
		follower = reps[1]
	}
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+follower.router+"/async/hello/", strings.NewReader("hi"))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	id := resp.Header.Get("Wisp-Call-Id")
	if resp.StatusCode != 202 || id == "" {
		t.Fatalf("async call through %s: %d, call ID %q", follower.name, resp.StatusCode, id)
	}
	var call core.Call
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		call, err = lead.c.GetCall(ctx, id)
		if err == nil && call.State == "succeeded" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("call %s taken by %s, as %s sees it: %+v, %v; want it succeeded", id, follower.name, lead.name, call, err)
		}
	}
	t.Logf("kubectl apply -k: 2 replicas and wisp-nats, %s leads, a function answers through both routers, an async call taken by %s is seen succeeded by %s", lead.name, follower.name, lead.name)
}

// proxyForPods listens on the pod bridge's gateway and forwards each
// connection to the address target gives then (a connection it has none
// for is closed); it returns the address it listens on.
func proxyForPods(t *testing.T, target func() (string, error)) string {
	t.Helper()
	l, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", podGateway+":0")
	if err != nil {
		t.Fatalf("listen on the pod gateway %s (is the cluster's bridge up?): %v", podGateway, err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				to, err := target()
				if err != nil {
					return
				}
				s, err := (&net.Dialer{Timeout: 5 * time.Second}).Dial("tcp", to)
				if err != nil {
					return
				}
				defer s.Close()
				go func() { _, _ = io.Copy(s, c) }()
				_, _ = io.Copy(c, s)
			}()
		}
	}()
	return l.Addr().String()
}

func write(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// envFileValue reads one value from the cluster's env file.
func envFileValue(t *testing.T, key string) string {
	t.Helper()
	path := os.Getenv(kubetest.EnvFile)
	if path == "" {
		dir := os.Getenv("WISP_KUBE_DIR")
		if dir == "" {
			dir = "/tmp/wisp-kube"
		}
		path = filepath.Join(dir, "env")
	}
	b, err := os.ReadFile(path) //nolint:gosec // G304: the harness's env file
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && k == key {
			return v
		}
	}
	return ""
}
