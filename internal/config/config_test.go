package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/config"
)

func TestDefaultsAreValid(t *testing.T) {
	if err := config.Default().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestEnv(t *testing.T) {
	c := config.Default()
	env := map[string]string{config.EnvDataDir: "/tmp/w", config.EnvDomain: "example.test", config.EnvLogFormat: "json",
		config.EnvTrusted: "10.0.0.0/8,fd00::/8"}
	c.ApplyEnv(func(k string) string { return env[k] })
	if c.DataDir != "/tmp/w" || c.Domain != "example.test" || c.LogFormat != "json" || c.AdminAddr != "127.0.0.1:8081" ||
		c.TrustedProxies != "10.0.0.0/8,fd00::/8" {
		t.Fatalf("after env: %+v", c)
	}
}

// TestSharedNATS: the replicas of deploy/kubernetes take a NATS URL and its
// token from the environment (wisp nats's server).
func TestSharedNATS(t *testing.T) {
	c := config.Default()
	env := map[string]string{config.EnvNATSURL: "nats://wisp-nats:4222", config.EnvNATSToken: "0123456789abcdef0123"}
	c.ApplyEnv(func(k string) string { return env[k] })
	if c.NATSURL != "nats://wisp-nats:4222" || c.NATSToken != "0123456789abcdef0123" {
		t.Fatalf("after env: URL %q, token %q", c.NATSURL, c.NATSToken)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestKubernetesSettings: the kubernetes runtime is accepted, with its
// settings from the environment.
func TestKubernetesSettings(t *testing.T) {
	c := config.Default()
	env := map[string]string{config.EnvRuntime: "kubernetes", config.EnvKubeconfig: "/etc/wisp/kubeconfig",
		config.EnvKubeNS: "wisp", config.EnvPullSecret: "regcred"}
	c.ApplyEnv(func(k string) string { return env[k] })
	if c.Runtime != config.RuntimeKubernetes || c.Kubeconfig != "/etc/wisp/kubeconfig" || c.KubeNamespace != "wisp" || c.KubePullSecret != "regcred" {
		t.Fatalf("after env: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		edit func(*config.Config)
		want string
	}{
		{"bad admin addr", func(c *config.Config) { c.AdminAddr = "8081" }, "--admin-addr"},
		{"bad port", func(c *config.Config) { c.Addr = ":99999" }, "--addr"},
		{"bad domain", func(c *config.Config) { c.Domain = "Example.com" }, "--domain"},
		{"empty label", func(c *config.Config) { c.Domain = "a..b" }, "--domain"},
		{"short token", func(c *config.Config) { c.AdminToken = "short" }, "--admin-token"},
		{"log format", func(c *config.Config) { c.LogFormat = "xml" }, "--log-format"},
		{"log level", func(c *config.Config) { c.LogLevel = "loud" }, "--log-level"},
		{"data dir", func(c *config.Config) { c.DataDir = "" }, "--data-dir"},
		{"docker network", func(c *config.Config) { c.DockerNetwork = "a b" }, "--docker-network"},
		{"start timeout", func(c *config.Config) { c.StartTimeout = time.Millisecond }, "--start-timeout"},
		{"stop grace", func(c *config.Config) { c.StopGrace = -time.Second }, "--stop-grace"},
		{"negative sandboxes", func(c *config.Config) { c.DockerSandboxes = -1 }, "--docker-sandboxes"},
		{"too many sandboxes", func(c *config.Config) { c.DockerSandboxes = 65 }, "between 0 (off) and 64"},
		{"reap interval", func(c *config.Config) { c.ReapInterval = time.Hour }, "--reap-interval"},
		{"windows", func(c *config.Config) { c.PanicWindow = time.Minute; c.StableWindow = time.Second }, "--panic-window"},
		{"parallel starts", func(c *config.Config) { c.ParallelStarts = 0 }, "--parallel-starts"},
		{"request log rate", func(c *config.Config) { c.RequestLogRate = 0 }, "--request-log-rate"},
		{"scale-down delay", func(c *config.Config) { c.ScaleDownDelay = -time.Second }, "--scale-down-delay"},
		{"unknown store", func(c *config.Config) { c.Store = "mysql://db" }, "accepted: sqlite:///path/to/wisp.db, postgres://"},
		{"store without a file", func(c *config.Config) { c.Store = "sqlite://" }, "names no database file"},
		{"unknown runtime", func(c *config.Config) { c.Runtime = "podman" }, "--runtime, WISP_RUNTIME) must be one of docker, kubernetes"},
		{"kube namespace", func(c *config.Config) { c.Runtime = "kubernetes"; c.KubeNamespace = "Wisp_NS" }, "--kube-namespace, WISP_KUBE_NAMESPACE) must be a DNS label"},
		{"unknown builder", func(c *config.Config) { c.Builder = "kaniko" }, "must be one of docker, none"},
		{"header timeout", func(c *config.Config) { c.ReadHeaderTimeout = 0 }, "--read-header-timeout"},
		{"body timeout", func(c *config.Config) { c.BodyTimeout = 2 * time.Hour }, "--body-timeout"},
		{"min body rate", func(c *config.Config) { c.MinBodyRate = -1 }, "--min-body-rate"},
		{"upgrade idle timeout", func(c *config.Config) { c.UpgradeIdleTimeout = 0 }, "--upgrade-idle-timeout"},
		{"trusted proxy not a range", func(c *config.Config) { c.TrustedProxies = "10.0.0.0/8, 10.0.0/8" },
			`trusted proxies (--trusted-proxies, WISP_TRUSTED_PROXIES): "10.0.0/8" is not an address range in CIDR notation`},
		{"trusted proxy prefix too long", func(c *config.Config) { c.TrustedProxies = "192.0.2.0/33" }, `"192.0.2.0/33" is not an address range`},
		{"trusted proxy a name", func(c *config.Config) { c.TrustedProxies = "lb.internal" }, `--trusted-proxies, WISP_TRUSTED_PROXIES): "lb.internal"`},
		{"TLS cert without key", func(c *config.Config) { c.AdminTLSCert = "cert.pem" }, "--admin-tls-key"},
		{"TLS key without cert", func(c *config.Config) { c.AdminTLSKey = "key.pem" }, "--admin-tls-cert"},
		{"registry login without a registry", func(c *config.Config) { c.RegistryPassword = "s3cret" }, "needs the registry it is for: set --registry"},
		{"kube owner", func(c *config.Config) { c.KubeOwner = "Prod_1" }, "--kube-owner, WISP_KUBE_OWNER) must be a DNS label"},
		{"registry with a scheme", func(c *config.Config) { c.Registry = "http://127.0.0.1:5000" }, "--registry, WISP_REGISTRY) is host[:port][/path]"},
		{"replica ID with a space", func(c *config.Config) { c.ReplicaID = "a b" }, "--replica-id"},
		{"advertised URL without a scheme", func(c *config.Config) { c.AdvertiseAdminURL = "10.0.0.5:8081" }, "--advertise-admin-url"},
		{"advertised URL with a path", func(c *config.Config) { c.AdvertiseAdminURL = "http://10.0.0.5:8081/v1" }, "--advertise-admin-url"},
		{"advertised URL of another scheme", func(c *config.Config) { c.AdvertiseAdminURL = "ftp://10.0.0.5" }, "--advertise-admin-url"},
		{"short leader lease", func(c *config.Config) { c.LeaderLease = 100 * time.Millisecond }, "--leader-lease"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := config.Default()
			tc.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

func TestParseStore(t *testing.T) {
	cases := []struct {
		in   string
		want config.StoreURL
		err  string
	}{
		{"", config.StoreURL{Kind: "sqlite", Path: "/data/wisp.db"}, ""},
		{"sqlite:///var/lib/wisp/w.db", config.StoreURL{Kind: "sqlite", Path: "/var/lib/wisp/w.db"}, ""},
		{"sqlite:rel/w.db", config.StoreURL{Kind: "sqlite", Path: "rel/w.db"}, ""},
		{"postgres://wisp@db.internal/wisp", config.StoreURL{Kind: "postgres", DSN: "postgres://wisp@db.internal/wisp"}, ""},
		{"postgresql://localhost/wisp", config.StoreURL{Kind: "postgres", DSN: "postgresql://localhost/wisp"}, ""},
		{"sqlite:", config.StoreURL{}, "names no database file"},
		{"sqlite:///x.db?mode=ro", config.StoreURL{}, "names no database file"},
		{"mysql://root:secret@db/wisp", config.StoreURL{}, "not a store URL"},
	}
	for _, tc := range cases {
		got, err := config.ParseStore(tc.in, "/data")
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseStore(%q): error %v, want one with %q", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("ParseStore(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseStore(%q): the error shows the password: %v", tc.in, err)
		}
	}
}

func TestParseTrustedProxies(t *testing.T) {
	cases := []struct {
		in   string
		want []string
		err  string
	}{
		{"", nil, ""},
		{"10.0.0.0/8", []string{"10.0.0.0/8"}, ""},
		{" 10.1.2.3/8 , fd00::/8,,", []string{"10.0.0.0/8", "fd00::/8"}, ""}, // masked; spaces and empty items skipped
		{"192.0.2.7", []string{"192.0.2.7/32"}, ""},
		{"::ffff:192.0.2.7", []string{"192.0.2.7/32"}, ""},
		{"2001:db8::1", []string{"2001:db8::1/128"}, ""},
		{"10.0.0.0/8,10.0.0/8", nil, `"10.0.0/8" is not an address range`},
		{"fe80::1%eth0", nil, `"fe80::1%eth0" is not an address range`},
		{"lb", nil, `"lb" is not an address range in CIDR notation (such as 10.0.0.0/8 or fd00::/8) nor an address`},
	}
	for _, tc := range cases {
		got, err := config.ParseTrustedProxies(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseTrustedProxies(%q): error %v, want one with %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseTrustedProxies(%q): %v", tc.in, err)
			continue
		}
		var text []string
		for _, p := range got {
			text = append(text, p.String())
		}
		if strings.Join(text, " ") != strings.Join(tc.want, " ") {
			t.Errorf("ParseTrustedProxies(%q) = %v, want %v", tc.in, text, tc.want)
		}
	}
}

// TestParseCallbackAllow: "any", ranges as for trusted proxies, and an
// error that names the bad item and the "any" choice; Validate refuses a
// bad setting naming the flag.
func TestParseCallbackAllow(t *testing.T) {
	if r, all, err := config.ParseCallbackAllow(" ANY "); err != nil || !all || r != nil {
		t.Errorf("any: %v %v %v", r, all, err)
	}
	if r, all, err := config.ParseCallbackAllow("10.0.0.0/8,127.0.0.1"); err != nil || all || len(r) != 2 || r[1].String() != "127.0.0.1/32" {
		t.Errorf("ranges: %v %v %v", r, all, err)
	}
	if r, all, err := config.ParseCallbackAllow(""); err != nil || all || r != nil {
		t.Errorf("empty: %v %v %v", r, all, err)
	}
	if _, _, err := config.ParseCallbackAllow("intranet"); err == nil || !strings.Contains(err.Error(), `"intranet"`) || !strings.Contains(err.Error(), `"any"`) {
		t.Errorf("bad item: %v", err)
	}
	cfg := config.Default()
	cfg.CallbackAllow = "everything"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--callback-allow") || !strings.Contains(err.Error(), config.EnvCallbacks) {
		t.Errorf("Validate with a bad allow-list: %v", err)
	}
}
