package docker

import (
	"log/slog"
	"testing"
)

func TestRouterURL(t *testing.T) {
	cases := []struct {
		name, network, router, gateway string
		desktop                        bool
		want                           string
	}{
		{"all addresses: the gateway", "wisp", "[::]:8080", "172.18.0.1", false, "http://172.18.0.1:8080"},
		{"all IPv4 addresses", "wisp", "0.0.0.0:8080", "172.18.0.1", false, "http://172.18.0.1:8080"},
		{"one address: that one", "wisp", "192.0.2.10:8080", "172.18.0.1", false, "http://192.0.2.10:8080"},
		{"loopback: the gateway, with a warning", "wisp", "127.0.0.1:8080", "172.18.0.1", false, "http://172.18.0.1:8080"},
		{"host network", HostNetwork, "[::]:9000", "", false, "http://127.0.0.1:9000"},
		{"host network on one address", HostNetwork, "127.0.0.1:9000", "", false, "http://127.0.0.1:9000"},
		{"Docker Desktop", "wisp", "127.0.0.1:8080", "172.18.0.1", true, "http://host.docker.internal:8080"},
		{"no router", "wisp", "", "172.18.0.1", false, ""},
		{"no gateway known", "wisp", "[::]:8080", "", false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := &Docker{cfg: Config{Network: tc.network, RouterAddr: tc.router}, log: slog.New(slog.DiscardHandler)}
			if got := d.routerURLFor(tc.gateway, tc.desktop); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
