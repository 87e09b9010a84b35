package dockertest

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"golang.org/x/sync/errgroup"
)

// StartBaseline is the bare engine's speed, for tests that bound Wisp's by
// it: it creates and starts n containers of image on network through the
// SDK, at most parallel at a time, waits until each accepts connections on
// port, and returns how long that took in all. The containers are removed.
func StartBaseline(ctx context.Context, image, network string, port, n, parallel int) (time.Duration, error) {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return 0, err
	}
	defer cli.Close()
	var mu sync.Mutex
	var ids []string
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		for _, id := range ids {
			_, _ = cli.ContainerRemove(rctx, id, client.ContainerRemoveOptions{Force: true})
		}
	}()
	began := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for range n {
		g.Go(func() error {
			c, err := cli.ContainerCreate(gctx, client.ContainerCreateOptions{
				Config:     &container.Config{Image: image, Labels: map[string]string{"wisp.test-baseline": "true"}},
				HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(network)},
			})
			if err != nil {
				return err
			}
			mu.Lock()
			ids = append(ids, c.ID)
			mu.Unlock()
			if _, err := cli.ContainerStart(gctx, c.ID, client.ContainerStartOptions{}); err != nil {
				return err
			}
			in, err := cli.ContainerInspect(gctx, c.ID, client.ContainerInspectOptions{})
			if err != nil {
				return err
			}
			ep := in.Container.NetworkSettings.Networks[network]
			if ep == nil || !ep.IPAddress.IsValid() {
				return fmt.Errorf("container %s has no address on %s", c.ID, network)
			}
			return waitTCP(gctx, net.JoinHostPort(ep.IPAddress.String(), fmt.Sprint(port)))
		})
	}
	if err := g.Wait(); err != nil {
		return 0, fmt.Errorf("start baseline: %w", err)
	}
	return time.Since(began), nil
}

func waitTCP(ctx context.Context, addr string) error {
	deadline := time.Now().Add(30 * time.Second)
	var d net.Dialer
	for time.Now().Before(deadline) {
		dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		c, err := d.DialContext(dctx, "tcp", addr)
		cancel()
		if err == nil {
			return c.Close()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("%s accepted no connection within 30s", addr)
}
