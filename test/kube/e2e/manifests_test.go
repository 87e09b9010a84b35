package e2e

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
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
	podDSN := proxyForPods(t, dsn)

	// The install, as the README says, with the test cluster's two
	// differences in an overlay: the image, and where the apiserver is
	// (there is no kube-proxy, so the kubernetes Service does not route).
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	if err := os.CopyFS(base, os.DirFS("../../../deploy/kubernetes")); err != nil {
		t.Fatal(err)
	}
	tok := make([]byte, 24)
	_, _ = crand.Read(tok)
	token := hex.EncodeToString(tok)
	write(t, filepath.Join(base, "wisp.env"), "WISP_ADMIN_TOKEN="+token+"\nWISP_STORE="+podDSN+"\n")
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
`, repo, digest, podGateway, apiPort))
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
	t.Logf("kubectl apply -k: 2 replicas, %s leads, a function answers through both routers", lead.name)
}

// proxyForPods listens on the pod bridge's gateway and forwards to the
// server of dsn; it returns dsn pointed at the proxy.
func proxyForPods(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	target := u.Host
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
				s, err := (&net.Dialer{Timeout: 5 * time.Second}).Dial("tcp", target)
				if err != nil {
					return
				}
				defer s.Close()
				go func() { _, _ = io.Copy(s, c) }()
				_, _ = io.Copy(c, s)
			}()
		}
	}()
	u.Host = l.Addr().String()
	return u.String()
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
