package daemon

import (
	"net"
	"strings"
	"testing"

	"github.com/wisp-run/wisp/internal/config"
	"github.com/wisp-run/wisp/internal/core"
)

func TestReplicaIdentity(t *testing.T) {
	t.Run("POD_NAME is the default replica ID", func(t *testing.T) {
		t.Setenv("POD_NAME", "wisp-7d9f-abcde")
		if got := defaultReplicaID(); got != "wisp-7d9f-abcde" {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("outside a pod: host, pid and a random part", func(t *testing.T) {
		t.Setenv("POD_NAME", "")
		a, b := defaultReplicaID(), defaultReplicaID()
		if a == b || core.CheckReplicaID(a) != nil || strings.Count(a, "-") < 2 {
			t.Fatalf("got %q and %q, want two valid, different IDs", a, b)
		}
	})

	addr := func(s string) net.Addr {
		ap, err := net.ResolveTCPAddr("tcp", s)
		if err != nil {
			t.Fatal(err)
		}
		return ap
	}
	cases := []struct {
		name, podIP, listen, configured string
		tls                             bool
		want                            string
	}{
		{"loopback", "", "127.0.0.1:8081", "", false, "http://127.0.0.1:8081"},
		{"a pod, listening on all addresses", "10.244.0.7", "0.0.0.0:8081", "", false, "http://10.244.0.7:8081"},
		{"a pod over TLS", "10.244.0.7", "[::]:8081", "", true, "https://10.244.0.7:8081"},
		{"IPv6 pod", "fd00::7", "[::]:8081", "", false, "http://[fd00::7]:8081"},
		{"configured wins", "10.244.0.7", "0.0.0.0:8081", "https://wisp-0.wisp.svc:8081/", false, "https://wisp-0.wisp.svc:8081"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("POD_IP", tc.podIP)
			cfg := config.Default()
			cfg.AdvertiseAdminURL = tc.configured
			if tc.tls {
				cfg.AdminTLSCert, cfg.AdminTLSKey = "c.pem", "k.pem"
			}
			if got := advertisedAdminURL(cfg, addr(tc.listen)); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}

	r := &replicas{id: "r1", adminURL: "http://10.0.0.1:8081"}
	if id, url := parseHolder(r.holderIdentity()); id != "r1" || url != "http://10.0.0.1:8081" {
		t.Fatalf("parseHolder(%q) = %q, %q", r.holderIdentity(), id, url)
	}
	if id, url := parseHolder("old-style-holder"); id != "old-style-holder" || url != "" {
		t.Fatalf("a holder without a URL: %q, %q", id, url)
	}
}
