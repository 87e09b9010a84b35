// Package kubetest helps tests, benchmarks and demos that need the real
// test cluster (scripts/kube/up.sh): it finds the cluster from the env file
// the harness writes and skips cleanly when there is none, gives each test
// a namespace of its own, and builds images from Go programs in this
// repository and pushes them to the harness's loopback registry, without
// Docker (one layer with the static binary, assembled with
// go-containerregistry).
package kubetest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/wisp-run/wisp/internal/runtime/kube/kubeimage"
)

// Env is where the test cluster is.
type Env struct {
	Kubeconfig string // an admin kubeconfig
	Registry   string // host:port of the plain-HTTP registry the node pulls from
	NodeIP     string
}

// Variables that locate the cluster.
const (
	// EnvFile names the env file scripts/kube/up.sh wrote; default
	// $WISP_KUBE_DIR/env, and /tmp/wisp-kube/env without WISP_KUBE_DIR.
	EnvFile = "WISP_KUBE_ENV"
	// EnvKubeconfig and EnvRegistry, when both set, name a cluster
	// directly (another cluster than the harness's).
	EnvKubeconfig = "WISP_KUBECONFIG"
	EnvRegistry   = "WISP_KUBE_REGISTRY"
	// EnvRequired, set (make test-kube does), makes a missing cluster a
	// failure instead of a skip.
	EnvRequired = "WISP_KUBE_REQUIRED"
)

// Find returns the test cluster's Env, or why there is none.
func Find() (Env, error) {
	if kc, reg := os.Getenv(EnvKubeconfig), os.Getenv(EnvRegistry); kc != "" && reg != "" {
		return Env{Kubeconfig: kc, Registry: reg}, nil
	}
	path := os.Getenv(EnvFile)
	if path == "" {
		dir := os.Getenv("WISP_KUBE_DIR")
		if dir == "" {
			dir = "/tmp/wisp-kube"
		}
		path = filepath.Join(dir, "env")
	}
	f, err := os.Open(path) //nolint:gosec // G304: the harness's env file, by design
	if err != nil {
		return Env{}, fmt.Errorf("no test cluster: run scripts/kube/up.sh (make kube-up): %s not found, and %s/%s are not set", path, EnvKubeconfig, EnvRegistry)
	}
	defer f.Close()
	var e Env
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		switch k {
		case "KUBECONFIG":
			e.Kubeconfig = v
		case "WISP_KUBE_REGISTRY":
			e.Registry = v
		case "WISP_KUBE_NODE_IP":
			e.NodeIP = v
		}
	}
	if e.Kubeconfig == "" || e.Registry == "" {
		return Env{}, fmt.Errorf("no test cluster: %s lacks KUBECONFIG or WISP_KUBE_REGISTRY", path)
	}
	return e, nil
}

// Skip skips the test when there is no test cluster or it does not
// answer, saying which (with WISP_KUBE_REQUIRED set, it fails instead), and
// returns the cluster's Env.
func Skip(t testing.TB) Env {
	t.Helper()
	skip := t.Skip
	if os.Getenv(EnvRequired) != "" {
		skip = func(args ...any) { t.Helper(); t.Fatal(append(args, "("+EnvRequired+" is set)")...) }
	}
	e, err := Find()
	if err != nil {
		skip(err.Error())
		return Env{}
	}
	cs, err := e.Client()
	if err != nil {
		skip(fmt.Sprintf("no test cluster: %v", err))
		return Env{}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := cs.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err != nil {
		skip(fmt.Sprintf("no test cluster: the API server of %s does not answer: %v (is scripts/kube/up.sh's cluster still up?)", e.Kubeconfig, err))
	}
	return e
}

// Client returns a clientset for the cluster.
func (e Env) Client() (kubernetes.Interface, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", e.Kubeconfig)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(rc)
}

// Namespace creates a namespace of its own for the test, waits until pods
// can be made in it (its default ServiceAccount exists), and deletes it
// when the test ends.
func Namespace(t testing.TB, e Env) string {
	t.Helper()
	cs, err := e.Client()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	ns := "wisp-test-" + hex.EncodeToString(b)
	ctx := t.Context()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
		Labels: map[string]string{"wisp.test": "true"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", ns, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Logf("delete namespace %s: %v", ns, err)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			return ns
		}
		if time.Now().After(deadline) {
			t.Fatalf("namespace %s has no default ServiceAccount after 30s: %v", ns, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var (
	pushMu sync.Mutex
	pushed = map[string]string{}
)

// PushGoImage compiles the Go program in pkg (relative to the module root,
// such as "./testdata/greeter") as a static Linux binary, makes an image of
// it (one layer, the binary as /app and its entrypoint, port exposed) and
// pushes it to ref ("host:port/repo:tag"). It returns ref pinned by digest
// ("host:port/repo@sha256:…"). Pushes are cached per process by ref.
func PushGoImage(ctx context.Context, pkg, ref string, port int) (string, error) {
	pushMu.Lock()
	defer pushMu.Unlock()
	if d, ok := pushed[ref]; ok {
		return d, nil
	}
	img, err := GoImage(ctx, pkg, port)
	if err != nil {
		return "", err
	}
	d, err := Push(ctx, img, ref)
	if err != nil {
		return "", err
	}
	pushed[ref] = d
	return d, nil
}

// MustPushGoImage is PushGoImage for tests.
func MustPushGoImage(t testing.TB, pkg, ref string, port int) string {
	t.Helper()
	d, err := PushGoImage(t.Context(), pkg, ref, port)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// GoImage builds the image of PushGoImage without pushing it.
func GoImage(ctx context.Context, pkg string, port int) (v1.Image, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "wisp-kube-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "app")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, pkg) //nolint:gosec // G204: test tooling builds the package it is told to
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	binary, err := os.ReadFile(bin) //nolint:gosec // G304: our own temp file
	if err != nil {
		return nil, err
	}
	return kubeimage.Binary(binary, "app", kubeimage.Config{Arch: goruntime.GOARCH, Port: port,
		Labels: map[string]string{"wisp.test-image": "true"}})
}

// Push pushes img to ref and returns ref pinned by the pushed digest.
func Push(ctx context.Context, img v1.Image, ref string) (string, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", err
	}
	if err := remote.Write(r, img, remote.WithContext(ctx)); err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return r.Context().Name() + "@" + d.String(), nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}
