package async

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/wisp-run/wisp/internal/core"
)

// CallbackPolicy says where callbacks may go. A callback URL is named by
// whoever submits a call, and any client that reaches the router can, so by
// default Wisp sends callbacks to public addresses only: never to the
// daemon's own machine, its private networks or a cloud metadata service.
// The operator lets chosen private ranges through (Allow), or everything
// (AllowAll).
type CallbackPolicy struct {
	Allow    []netip.Prefix
	AllowAll bool
}

// errCallbackRefused marks a callback refused by the policy: not retried.
var errCallbackRefused = errors.New("callback address refused")

// cgnat is the shared address space of carrier-grade NAT (RFC 6598),
// often a provider's or a VPN's internal network.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// check says why addr may not receive a callback, or nil.
func (p CallbackPolicy) check(addr netip.Addr) error {
	addr = addr.Unmap()
	if p.AllowAll {
		return nil
	}
	for _, pre := range p.Allow {
		if pre.Contains(addr) {
			return nil
		}
	}
	kind := ""
	switch {
	case addr.IsLoopback():
		kind = "a loopback address"
	case addr.IsUnspecified():
		kind = "the unspecified address"
	case addr.IsMulticast():
		kind = "a multicast address"
	case addr.IsLinkLocalUnicast():
		kind = "a link-local address (where cloud metadata services answer)"
	case addr.IsPrivate(), cgnat.Contains(addr):
		kind = "a private address"
	case addr.Is4() && addr.As4()[0] == 0:
		kind = "an address of \"this network\" (0.0.0.0/8)"
	default:
		return nil
	}
	return fmt.Errorf("%w: %s is %s; Wisp sends callbacks only to public addresses unless the operator allows the range (wisp serve --callback-allow)",
		errCallbackRefused, addr, kind)
}

// checkURL refuses, at submission, a callback whose host is an address
// (or localhost) the policy refuses. Names are checked when the callback
// is sent, on the address they resolve to then.
func (p CallbackPolicy) checkURL(u *url.URL) error {
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		host = "127.0.0.1"
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return nil //nolint:nilerr // a name, checked when the callback is sent
	}
	if err := p.check(addr); err != nil {
		return core.Invalidf(HeaderCallback, "callback URL %q: %s", u.String(), strings.TrimPrefix(err.Error(), errCallbackRefused.Error()+": "))
	}
	return nil
}

// client makes the HTTP client that sends callbacks: every connection it
// opens, redirects included, is checked against the policy on the address
// it dials, after name resolution, so a name cannot resolve around it. No
// proxy from the environment: a proxy would dial for us, unchecked.
func (p CallbackPolicy) client() *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: cannot read the address %q", errCallbackRefused, address)
			}
			return p.check(ap.Addr())
		}}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          32,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{Timeout: callbackTimeout, Transport: tr}
}

// refused reports whether err is a callback the policy refused.
func refused(err error) bool { return errors.Is(err, errCallbackRefused) }
