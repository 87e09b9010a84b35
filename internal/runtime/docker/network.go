package docker

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/wisp-run/wisp/internal/runtime"
)

// EnvRouterURL names the variable that tells an instance where the router
// is, as seen from inside its container: a service calls another through
// the router (with the other's Host header, or under /s/<service>/), never
// at its container's address.
const EnvRouterURL = "WISP_ROUTER_URL"

// optionICC is the bridge driver's option for traffic between containers
// on one network. Off ("false"), the engine drops packets from one
// container to another on the bridge, while the host (the router) still
// reaches every container, and containers still reach the host and the
// outside world (issue 10, fault 6: a container of one service fetched
// another's container directly, bypassing the router, its tags and
// max_concurrency).
const optionICC = "com.docker.network.bridge.enable_icc"

// ensureNetwork makes sure the bridge network exists with traffic between
// containers turned off, and returns its gateway (the host's address on it,
// "" if the engine reports none).
//
// A network that Wisp created before it set the option is recreated when no
// container is attached to it; otherwise (instances kept for adoption, say)
// Wisp goes on with it and says what to do. A network the user created is
// never changed: Wisp only warns.
func (d *Docker) ensureNetwork(ctx context.Context) (string, error) {
	name := d.cfg.Network
	res, err := d.cli.NetworkInspect(ctx, name, client.NetworkInspectOptions{})
	switch {
	case cerrdefs.IsNotFound(err):
		return d.createNetwork(ctx, nil)
	case err != nil:
		return "", fmt.Errorf("docker: inspect network %s: %w", name, err)
	}
	nw := res.Network
	gateway := gatewayOf(nw.IPAM.Config)
	if nw.Options[optionICC] == "false" {
		return gateway, nil
	}
	fix := fmt.Sprintf("docker network rm %s (with no container attached; Wisp recreates it) or docker network create -o %s=false %s", name, optionICC, name)
	switch {
	case nw.Labels[runtime.LabelManaged] != "true":
		d.log.Warn("instances on this network can reach each other directly: it was not created by Wisp, so Wisp leaves it as it is; to isolate them, recreate it with "+optionICC+"=false",
			"network", name, "fix", fmt.Sprintf("docker network create -o %s=false %s", optionICC, name))
		return gateway, nil
	case len(nw.Containers) > 0:
		d.log.Warn("instances on this network can reach each other directly: an older Wisp created it without "+optionICC+"=false, and it cannot be recreated while containers are attached; start Wisp once without --keep-instances (its containers are then removed at shutdown and the network is recreated at the next start), or run the fix",
			"network", name, "attached", len(nw.Containers), "fix", fix)
		return gateway, nil
	}
	if _, err := d.cli.NetworkRemove(ctx, nw.ID, client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
		d.log.Warn("instances on this network can reach each other directly: an older Wisp created it without "+optionICC+"=false, and removing it to recreate it failed",
			"network", name, "err", err, "fix", fix)
		return gateway, nil
	}
	d.log.Info("recreating the network with traffic between instances turned off", "network", name, "option", optionICC+"=false")
	// Same subnet and gateway: what listens on the gateway, or a firewall
	// rule for the subnet, keeps working.
	return d.createNetwork(ctx, &network.IPAM{Driver: nw.IPAM.Driver, Options: nw.IPAM.Options, Config: nw.IPAM.Config})
}

// createNetwork creates the network with ipam, or the engine's choice of
// addresses for nil.
func (d *Docker) createNetwork(ctx context.Context, ipam *network.IPAM) (string, error) {
	name := d.cfg.Network
	_, err := d.cli.NetworkCreate(ctx, name, client.NetworkCreateOptions{
		Driver:  "bridge",
		IPAM:    ipam,
		Options: map[string]string{optionICC: "false"},
		Labels:  map[string]string{runtime.LabelManaged: "true"},
	})
	switch {
	case err == nil:
		d.log.Info("created network", "name", name, "option", optionICC+"=false")
	case !cerrdefs.IsConflict(err): // a conflict: created meanwhile by another wisp
		return "", fmt.Errorf("docker: create network %s: %w", name, err)
	}
	res, err := d.cli.NetworkInspect(ctx, name, client.NetworkInspectOptions{})
	if err != nil {
		return "", fmt.Errorf("docker: inspect network %s: %w", name, err)
	}
	return gatewayOf(res.Network.IPAM.Config), nil
}

func gatewayOf(configs []network.IPAMConfig) string {
	for _, c := range configs {
		if c.Gateway.Is4() {
			return c.Gateway.String()
		}
	}
	for _, c := range configs {
		if c.Gateway.IsValid() {
			return c.Gateway.String()
		}
	}
	return ""
}

// routerURLFor works out WISP_ROUTER_URL: where a container reaches the
// router. Host networking shares the host's loopback; Docker Desktop names
// the host host.docker.internal; on a bridge the host is the gateway, or
// the router's own address when it listens on one.
func (d *Docker) routerURLFor(gateway string, desktop bool) string {
	host, port, err := net.SplitHostPort(d.cfg.RouterAddr)
	if err != nil || port == "" || port == "0" {
		return ""
	}
	ip, _ := netip.ParseAddr(host)
	switch {
	case d.cfg.Network == HostNetwork:
		if ip.IsValid() && !ip.IsUnspecified() {
			return "http://" + net.JoinHostPort(ip.String(), port)
		}
		return "http://" + net.JoinHostPort("127.0.0.1", port)
	case desktop:
		return "http://" + net.JoinHostPort("host.docker.internal", port)
	case ip.IsLoopback():
		d.log.Warn("the router listens only on loopback, which containers cannot reach: instances cannot call other services through it; listen on all addresses (--addr :"+port+") or on the network's gateway for that",
			"router", d.cfg.RouterAddr, "gateway", gateway)
		if gateway == "" {
			return ""
		}
		return "http://" + net.JoinHostPort(gateway, port)
	case ip.IsValid() && !ip.IsUnspecified():
		return "http://" + net.JoinHostPort(ip.String(), port)
	case gateway != "":
		return "http://" + net.JoinHostPort(gateway, port)
	}
	return ""
}
