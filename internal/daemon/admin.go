package daemon

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/wisp-run/wisp/internal/config"
)

// secureAdmin serves the admin API over TLS when cfg has a certificate and
// a key, and warns loudly when it is served over plain HTTP on an address
// other machines can reach: every request carries the admin token.
func secureAdmin(ln net.Listener, cfg config.Config, logger *slog.Logger, out io.Writer) (net.Listener, error) {
	if cfg.AdminTLS() {
		cert, err := tls.LoadX509KeyPair(cfg.AdminTLSCert, cfg.AdminTLSKey)
		if err != nil {
			return nil, fmt.Errorf("admin API TLS (--admin-tls-cert %s, --admin-tls-key %s): %w", cfg.AdminTLSCert, cfg.AdminTLSKey, err)
		}
		return tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}), nil
	}
	if exposed(ln.Addr()) {
		const msg = "the admin API is served over plain HTTP on an address other machines can reach: anyone on the network path can read the admin token; serve it over TLS (--admin-tls-cert, --admin-tls-key) or bind it to 127.0.0.1 (--admin-addr)"
		logger.Warn(msg, "addr", ln.Addr().String())
		fmt.Fprintf(out, "\nWARNING: %s (listening on %s)\n\n", msg, ln.Addr())
	}
	return ln, nil
}

// exposed reports whether a bound address is reachable from other machines:
// anything but loopback.
func exposed(addr net.Addr) bool {
	ap, err := netip.ParseAddrPort(addr.String())
	return err != nil || !ap.Addr().IsLoopback()
}

// adminScheme is the scheme of the admin API's URLs.
func adminScheme(cfg config.Config) string {
	if cfg.AdminTLS() {
		return "https"
	}
	return "http"
}

// adminHandler serves the dashboard under /ui/ and the admin API at every
// other path.
func adminHandler(api, ui http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/ui":
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				http.Redirect(w, r, "/ui/", http.StatusSeeOther)
				return
			}
			api.ServeHTTP(w, r)
		case strings.HasPrefix(r.URL.Path, "/ui/"):
			ui.ServeHTTP(w, r)
		default:
			api.ServeHTTP(w, r)
		}
	})
}
