// Package dockertest helps tests, benchmarks and demos that need the real
// Docker Engine: it skips cleanly when there is none, builds small images
// from Go programs in this repository (static binary, FROM scratch, so no
// registry is needed) and cleans up the containers a test leaves.
package dockertest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/wisp-run/wisp/internal/runtime"
)

// Skip skips the test when no Docker Engine answers, saying why.
func Skip(t testing.TB) {
	t.Helper()
	if err := Ping(t.Context()); err != nil {
		t.Skipf("no Docker Engine: %v (these tests run against the real engine; start dockerd to run them)", err)
	}
}

// Ping reports whether a Docker Engine answers.
func Ping(ctx context.Context) error {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = cli.Ping(ctx, client.PingOptions{})
	return err
}

var (
	buildMu sync.Mutex
	built   = map[string]string{}
)

// ModuleRoot returns the directory of this module's go.mod.
func ModuleRoot() (string, error) {
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

// BuildGoImage compiles the Go program in pkg (a path relative to the module
// root, such as "./testdata/greeter") as a static binary and builds the image
// tag FROM scratch around it. It returns the image ID. Builds are cached per
// process by tag.
func BuildGoImage(ctx context.Context, pkg, tag string) (string, error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	if id, ok := built[tag]; ok {
		return id, nil
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp("", "wisp-image-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "app")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, pkg) //nolint:gosec // G204: test tooling builds the package it is told to
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	binary, err := os.ReadFile(bin) //nolint:gosec // G304: our own temp file
	if err != nil {
		return "", err
	}
	// The label makes every tag its own image ID, so removing one image (a
	// test of a deleted image) cannot remove another.
	dockerfile := fmt.Sprintf("FROM scratch\nCOPY app /app\nLABEL wisp.test-tag=%q\nENTRYPOINT [\"/app\"]\n", tag)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		mode int64
		body []byte
	}{{"Dockerfile", 0o644, []byte(dockerfile)}, {"app", 0o755, binary}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body))}); err != nil {
			return "", err
		}
		if _, err := tw.Write(f.body); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return "", err
	}
	defer cli.Close()
	res, err := cli.ImageBuild(ctx, &buf, client.ImageBuildOptions{
		Tags: []string{tag}, Remove: true, ForceRemove: true, Version: build.BuilderV1,
		Labels: map[string]string{"wisp.test-image": "true"},
	})
	if err != nil {
		return "", fmt.Errorf("build %s: %w", tag, err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var msg struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(sc.Bytes(), &msg) == nil && msg.Error != "" {
			return "", fmt.Errorf("build %s: %s", tag, msg.Error)
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("build %s: %w", tag, err)
	}
	img, err := cli.ImageInspect(ctx, tag)
	if err != nil {
		return "", fmt.Errorf("build %s: %w", tag, err)
	}
	built[tag] = img.ID
	return img.ID, nil
}

// MustBuildGoImage is BuildGoImage for tests.
func MustBuildGoImage(t testing.TB, pkg, tag string) string {
	t.Helper()
	id, err := BuildGoImage(t.Context(), pkg, tag)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// Tag gives image id another tag.
func Tag(ctx context.Context, id, tag string) error {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return err
	}
	defer cli.Close()
	_, err = cli.ImageTag(ctx, client.ImageTagOptions{Source: id, Target: tag})
	return err
}

// RemoveImage removes an image by reference or ID, forcibly.
func RemoveImage(ctx context.Context, ref string) error {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return err
	}
	defer cli.Close()
	_, err = cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	buildMu.Lock()
	for tag, id := range built {
		if tag == ref || id == ref {
			delete(built, tag)
		}
	}
	buildMu.Unlock()
	return err
}

// Containers lists the IDs and states of the containers of service (all
// states), straight from the engine.
func Containers(ctx context.Context, service string) (map[string]string, error) {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	res, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: client.Filters{}.Add("label", runtime.LabelService+"="+service)})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, c := range res.Items {
		out[c.ID] = string(c.State)
	}
	return out, nil
}

// KillContainer kills and, with remove, removes a container behind Wisp's
// back, as a person at a shell would.
func KillContainer(ctx context.Context, containerID string, remove bool) error {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return err
	}
	defer cli.Close()
	if remove {
		_, err = cli.ContainerRemove(ctx, containerID, client.ContainerRemoveOptions{Force: true})
		return err
	}
	_, err = cli.ContainerKill(ctx, containerID, client.ContainerKillOptions{Signal: "KILL"})
	return err
}

// CleanupService removes every container of the services whose name starts
// with prefix, when the test ends.
func CleanupService(t testing.TB, prefix string) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), 30*time.Second)
		defer cancel()
		cli, err := client.New(client.FromEnv)
		if err != nil {
			return
		}
		defer cli.Close()
		res, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true,
			Filters: client.Filters{}.Add("label", runtime.LabelManaged+"=true")})
		if err != nil {
			return
		}
		for _, c := range res.Items {
			if strings.HasPrefix(c.Labels[runtime.LabelService], prefix) {
				_, _ = cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
			}
		}
	})
}

// Network describes a Docker network as the tests of isolation see it.
type Network struct {
	Gateway    string            // the bridge's address on the host
	Options    map[string]string // driver options
	Labels     map[string]string
	Containers int // attached containers
}

// InspectNetwork returns the network called name.
func InspectNetwork(ctx context.Context, name string) (Network, error) {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return Network{}, err
	}
	defer cli.Close()
	res, err := cli.NetworkInspect(ctx, name, client.NetworkInspectOptions{})
	if err != nil {
		return Network{}, err
	}
	n := Network{Options: res.Network.Options, Labels: res.Network.Labels, Containers: len(res.Network.Containers)}
	for _, c := range res.Network.IPAM.Config {
		if c.Gateway.Is4() {
			n.Gateway = c.Gateway.String()
		}
	}
	return n, nil
}

// CreateNetwork creates a bridge network with driver options and labels (to
// stand for one an older Wisp created).
func CreateNetwork(ctx context.Context, name string, options, labels map[string]string) error {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return err
	}
	defer cli.Close()
	_, err = cli.NetworkCreate(ctx, name, client.NetworkCreateOptions{Driver: "bridge", Options: options, Labels: labels})
	return err
}

// RemoveNetwork removes a network; one that does not exist is no error.
func RemoveNetwork(ctx context.Context, name string) error {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return err
	}
	defer cli.Close()
	if _, err := cli.NetworkRemove(ctx, name, client.NetworkRemoveOptions{}); err != nil && !strings.Contains(err.Error(), "not found") {
		return err
	}
	return nil
}

// RunOn starts a container of image on network, outside of any Wisp (to
// stand for a container attached to a network), and returns its ID. The
// caller removes it with KillContainer.
func RunOn(ctx context.Context, image, network string) (string, error) {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return "", err
	}
	defer cli.Close()
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config:     &container.Config{Image: image, Labels: map[string]string{"wisp.test-container": "true"}},
		HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(network)},
	})
	if err != nil {
		return "", err
	}
	if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		_, _ = cli.ContainerRemove(context.WithoutCancel(ctx), created.ID, client.ContainerRemoveOptions{Force: true})
		return "", err
	}
	return created.ID, nil
}

// Sandbox is a network sandbox container as the tests see it.
type Sandbox struct {
	ID, Name, State string
}

// Sandboxes lists the sandbox containers of the Wisp installation owner,
// in every state, straight from the engine.
func Sandboxes(ctx context.Context, owner string) ([]Sandbox, error) {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	res, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: client.Filters{}.Add("label", runtime.LabelOwner+"="+owner, "wisp.role=sandbox")})
	if err != nil {
		return nil, err
	}
	var out []Sandbox
	for _, c := range res.Items {
		name := ""
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		out = append(out, Sandbox{ID: c.ID, Name: name, State: string(c.State)})
	}
	return out, nil
}

// Container is what the tests look at in a container.
type Container struct {
	Labels      map[string]string
	NetworkMode string
	State       string
	CPUShares   int64 // 0: the engine's default
}

// InspectContainer returns a container's labels, network mode, state and
// CPU weight.
func InspectContainer(ctx context.Context, id string) (Container, error) {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return Container{}, err
	}
	defer cli.Close()
	res, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return Container{}, err
	}
	c := Container{}
	if res.Container.Config != nil {
		c.Labels = res.Container.Config.Labels
	}
	if res.Container.HostConfig != nil {
		c.NetworkMode = string(res.Container.HostConfig.NetworkMode)
		c.CPUShares = res.Container.HostConfig.CPUShares
	}
	if res.Container.State != nil {
		c.State = string(res.Container.State.Status)
	}
	return c, nil
}
