package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// profile splits the sandbox path of a cold start into its phases, by hand
// through the SDK, as Wisp runs it: a holder container on the network
// started ahead (not timed; Wisp's sandbox), the instance created against
// it ahead (timed, but off the cold path: Wisp's spare), then the cold
// path itself: ContainerStart, and from its return to the first answer.
// For the floor of the engine's start, the same container is also started
// with no network at all (NetworkMode none), where the engine does no
// network work: what is left is containerd, the shim, runc, cgroups and the
// rootfs mount (fuse-overlayfs here).
func profile(ctx context.Context, cli *client.Client, hc *http.Client, n int) (create, start, answer, startNone row, err error) {
	create, start, answer, startNone = row{name: "create (spare)"}, row{name: "start"}, row{name: "first answer"}, row{name: "start, network none"}
	for range n {
		var c, s, a, sn time.Duration
		if c, s, a, err = profileOnce(ctx, cli, hc); err != nil {
			return
		}
		if sn, err = startNoNetwork(ctx, cli); err != nil {
			return
		}
		create.samples = append(create.samples, c)
		start.samples = append(start.samples, s)
		answer.samples = append(answer.samples, a)
		startNone.samples = append(startNone.samples, sn)
	}
	return
}

func profileOnce(ctx context.Context, cli *client.Client, hc *http.Client) (create, start, answer time.Duration, err error) {
	// The holder: the same image listening elsewhere, so port 8080 of the
	// namespace is the instance's.
	h, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config:     &container.Config{Image: image, Env: []string{"PORT=9"}, Labels: map[string]string{label: "1"}},
		HostConfig: &container.HostConfig{NetworkMode: network},
	})
	if err != nil {
		return 0, 0, 0, err
	}
	defer remove(ctx, cli, h.ID)
	if _, err := cli.ContainerStart(ctx, h.ID, client.ContainerStartOptions{}); err != nil {
		return 0, 0, 0, err
	}
	in, err := cli.ContainerInspect(ctx, h.ID, client.ContainerInspectOptions{})
	if err != nil {
		return 0, 0, 0, err
	}
	url := "http://" + net.JoinHostPort(in.Container.NetworkSettings.Networks[network].IPAddress.String(), "8080") + "/"
	time.Sleep(200 * time.Millisecond) // as in Wisp, the sandbox is ready well before it is used

	t0 := time.Now()
	c, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config:     &container.Config{Image: image, Labels: map[string]string{label: "1"}},
		HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode("container:" + h.ID)},
	})
	if err != nil {
		return 0, 0, 0, err
	}
	defer remove(ctx, cli, c.ID)
	create = time.Since(t0)
	time.Sleep(200 * time.Millisecond)

	t1 := time.Now()
	if _, err := cli.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
		return 0, 0, 0, err
	}
	start = time.Since(t1)
	t2 := time.Now()
	if err := poll(ctx, hc, url); err != nil {
		return 0, 0, 0, err
	}
	return create, start, time.Since(t2), nil
}

// startNoNetwork times ContainerStart of a container with no network.
func startNoNetwork(ctx context.Context, cli *client.Client) (time.Duration, error) {
	c, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config:     &container.Config{Image: image, Labels: map[string]string{label: "1"}},
		HostConfig: &container.HostConfig{NetworkMode: "none"},
	})
	if err != nil {
		return 0, err
	}
	defer remove(ctx, cli, c.ID)
	time.Sleep(200 * time.Millisecond)
	t := time.Now()
	if _, err := cli.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
		return 0, err
	}
	return time.Since(t), nil
}

// printProfile prints the phases against Wisp's row.
func printProfile(create, start, answer, startNone, wisp row) {
	fmt.Printf("\nWhere a sandbox cold start goes (by hand through the SDK, %d runs, p50)\n", len(start.samples))
	for _, r := range []row{create, start, answer, startNone} {
		fmt.Printf("  %-34s %7.1f ms\n", r.name, ms(r.p(50)))
	}
	floor := start.p(50) + answer.p(50)
	fmt.Printf("  %-34s %7.1f ms   (start + first answer)\n", "floor of the cold path", ms(floor))
	fmt.Printf("  %-34s %7.1f ms   (Wisp's row %.1f ms minus the floor: routing, the activator, readiness probing)\n",
		"Wisp's own share", ms(wisp.p(50)-floor), ms(wisp.p(50)))
}
