package cli_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/cli"
	"github.com/wisp-run/wisp/internal/config"
	"github.com/wisp-run/wisp/internal/daemon"
)

func runCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Run(t.Context(), args, &out, &errb, func(k string) string { return env[k] })
	return code, out.String(), errb.String()
}

// TestVersionFlag: wisp --version prints the build, as docker and kubectl
// users expect; "wisp version" stays the versions command group.
func TestVersionFlag(t *testing.T) {
	code, out, errOut := runCLI(t, nil, "--version")
	if code != 0 || !strings.HasPrefix(out, "wisp ") || !strings.Contains(out, "go1.") {
		t.Fatalf("--version: exit %d, %q %q", code, out, errOut)
	}
	if code, out, _ := runCLI(t, nil, "version", "--help"); code != 0 || !strings.Contains(out, "immutable versions") || !strings.Contains(out, "create") {
		t.Fatalf("version --help: exit %d, %q", code, out)
	}
}

// TestServiceSetHelp: flags that only change what is given show no
// defaults.
func TestServiceSetHelp(t *testing.T) {
	_, out, _ := runCLI(t, nil, "service", "set", "--help")
	out, _, _ = strings.Cut(out, "Global Flags:")
	if strings.Contains(out, "(default") || strings.Count(out, "unchanged unless given") != 18 {
		t.Fatalf("service set --help:\n%s", out)
	}
	// create still shows them: they are what a new service gets.
	if _, out, _ := runCLI(t, nil, "service", "create", "--help"); !strings.Contains(out, `(default "5m0s")`) {
		t.Fatalf("service create --help:\n%s", out)
	}
}

// TestJSONErrors: with -o json a failure prints the API's error object on
// stdout (and the message on stderr), with the same exit codes.
func TestJSONErrors(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name string
		args []string
		code int
		want map[string]any
	}{
		{"API error", []string{"service", "get", "nope", "-o", "json"}, 1,
			map[string]any{"status": float64(404), "code": "not_found", "message": `service "nope" not found`}},
		{"API error with a field", []string{"service", "create", "Bad", "-o", "json"}, 1,
			map[string]any{"status": float64(422), "code": "invalid", "field": "name"}},
		{"usage", []string{"version", "get", "hello", "latest", "-o", "json"}, 2,
			map[string]any{"code": "usage"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := e.run(tc.args...)
			var got struct {
				Error map[string]any `json:"error"`
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil || code != tc.code {
				t.Fatalf("exit %d, stdout %q (%v), stderr %q", code, out, err, errOut)
			}
			for k, v := range tc.want {
				if got.Error[k] != v {
					t.Errorf("error.%s = %v, want %v (%v)", k, got.Error[k], v, got.Error)
				}
			}
			if got.Error["message"] == "" || !strings.Contains(errOut, "Error:") {
				t.Errorf("no message: %v, stderr %q", got.Error, errOut)
			}
		})
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key, made for this
// test, and returns their paths.
func selfSigned(t *testing.T) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "wisp test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

// TestAdminTLS: with --admin-tls-cert/--admin-tls-key the admin API speaks
// HTTPS; the CLI reaches it with --server https://… and --ca-cert (or
// WISP_CA_CERT), and says what to do without them.
func TestAdminTLS(t *testing.T) {
	certPath, keyPath := selfSigned(t)
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.AdminAddr, cfg.Addr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.AdminTLSCert, cfg.AdminTLSKey = certPath, keyPath
	e := startEnv(t, cfg, daemon.Options{Out: io.Discard, Runtime: newFake()})
	https := "https://" + e.server
	base := []string{"--data-dir", e.dataDir}
	run := func(env map[string]string, args ...string) (int, string, string) {
		return runCLI(t, env, append(append([]string{}, base...), args...)...)
	}
	if code, out, errOut := run(nil, "--server", https, "--ca-cert", certPath, "service", "create", "secure"); code != 0 || !strings.Contains(out, "Created service secure") {
		t.Fatalf("over TLS with --ca-cert: exit %d %q %q", code, out, errOut)
	}
	if code, out, errOut := run(map[string]string{"WISP_SERVER": https, "WISP_CA_CERT": certPath}, "service", "list"); code != 0 || !strings.Contains(out, "secure") {
		t.Fatalf("over TLS with WISP_CA_CERT: exit %d %q %q", code, out, errOut)
	}
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"untrusted certificate", []string{"--server", https, "service", "list"}, 1, "--ca-cert"},
		{"plain HTTP to HTTPS", []string{"--server", "http://" + e.server, "service", "list"}, 1, "speaks HTTPS: use --server https://" + e.server},
		{"not a certificate", []string{"--server", https, "--ca-cert", keyPath, "service", "list"}, 2, "holds no PEM certificate"},
		{"no such file", []string{"--server", https, "--ca-cert", keyPath + ".missing", "service", "list"}, 2, "--ca-cert"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if code, _, errOut := run(nil, tc.args...); code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Fatalf("got exit %d %q, want %d and %q", code, errOut, tc.code, tc.want)
			}
		})
	}
	// HTTPS to a plain server says so too.
	plain := newEnv(t)
	if code, _, errOut := runCLI(t, nil, "--data-dir", plain.dataDir, "--server", "https://"+plain.server, "service", "list"); code != 1 || !strings.Contains(errOut, "speaks plain HTTP") {
		t.Fatalf("HTTPS to a plain server: exit %d %q", code, errOut)
	}
	// A key that does not match is refused at start, naming the flags.
	otherCert, _ := selfSigned(t)
	bad := cfg
	bad.DataDir = t.TempDir()
	bad.AdminTLSCert = otherCert
	if _, err := daemon.Open(t.Context(), bad, slog.New(slog.DiscardHandler), daemon.Options{Out: io.Discard, Runtime: newFake()}); err == nil || !strings.Contains(err.Error(), "--admin-tls-cert") {
		t.Fatalf("mismatched key: %v", err)
	}
}

// TestServeTrustedProxies: a bad --trusted-proxies (or its variable) stops
// serve before it starts, naming the setting and the value; a good one
// reaches the router, whose source rules then believe X-Forwarded-For from
// those proxies only.
func TestServeTrustedProxies(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"flag", nil, []string{"--trusted-proxies", "10.0.0.0/8,10.0.0/8"}},
		{"variable", map[string]string{config.EnvTrusted: "10.0.0/8"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--data-dir", t.TempDir(), "serve", "--admin-addr", "127.0.0.1:0", "--addr", "127.0.0.1:0"}, tc.args...)
			code, _, errOut := runCLI(t, tc.env, args...)
			want := `trusted proxies (--trusted-proxies, WISP_TRUSTED_PROXIES): "10.0.0/8" is not an address range in CIDR notation`
			if code != 2 || !strings.Contains(errOut, want) {
				t.Fatalf("exit %d %q, want 2 and %q", code, errOut, want)
			}
		})
	}
	if _, out, _ := runCLI(t, nil, "serve", "--help"); !strings.Contains(out, "--trusted-proxies") || !strings.Contains(out, "X-Forwarded-For is never believed") {
		t.Fatalf("serve --help does not explain --trusted-proxies:\n%s", out)
	}

	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.AdminAddr, cfg.Addr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.TrustedProxies = "127.0.0.1"
	e := startEnv(t, cfg, daemon.Options{Out: io.Discard, Runtime: newFake()})
	e.ok("service", "create", "hello")
	e.ok("version", "create", "hello", "--image", "hello:1")
	e.ok("version", "create", "hello", "--image", "hello:2")
	e.ok("traffic", "set", "hello", "1=100", "--rule", "source:203.0.113.0/24 -> 2")
	for _, tc := range []struct{ xff, want string }{{"", "1"}, {"203.0.113.9", "2"}, {"203.0.113.9, 198.51.100.1", "1"}} {
		req, err := http.NewRequestWithContext(t.Context(), "GET", "http://"+e.router+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "hello.localhost"
		if tc.xff != "" {
			req.Header.Set("X-Forwarded-For", tc.xff)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if got := resp.Header.Get("Wisp-Version"); resp.StatusCode != 200 || got != tc.want {
			t.Fatalf("X-Forwarded-For %q: status %d, Wisp-Version %q, want 200 and %q", tc.xff, resp.StatusCode, got, tc.want)
		}
	}
}
