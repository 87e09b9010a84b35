package async

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/wisp-run/wisp/internal/core"
)

// TestCallbackPolicyCheck: public addresses pass; loopback, private,
// link-local, CGNAT, multicast and unspecified ones are refused, naming
// why, unless a range allows them or the policy allows every address.
func TestCallbackPolicyCheck(t *testing.T) {
	refusedBy := map[string]string{
		"127.0.0.1":        "loopback",
		"::1":              "loopback",
		"::ffff:127.0.0.1": "loopback",
		"10.1.2.3":         "private",
		"192.168.0.1":      "private",
		"172.16.5.4":       "private",
		"fd00::1":          "private",
		"100.64.0.1":       "private",
		"169.254.169.254":  "link-local",
		"fe80::1":          "link-local",
		"0.0.0.0":          "unspecified",
		"::":               "unspecified",
		"224.0.0.1":        "multicast",
		"0.1.2.3":          "this network",
	}
	var none CallbackPolicy
	for a, want := range refusedBy {
		err := none.check(netip.MustParseAddr(a))
		if err == nil || !refused(err) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--callback-allow") {
			t.Errorf("%s: %v, want refused as %s, naming --callback-allow", a, err, want)
		}
	}
	for _, a := range []string{"93.184.216.34", "2606:4700::1111", "8.8.8.8"} {
		if err := none.check(netip.MustParseAddr(a)); err != nil {
			t.Errorf("public %s refused: %v", a, err)
		}
	}
	some := CallbackPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32")}}
	for a, ok := range map[string]bool{"10.9.9.9": true, "127.0.0.1": true, "::ffff:10.0.0.1": true, "127.0.0.2": false, "192.168.1.1": false} {
		if err := some.check(netip.MustParseAddr(a)); (err == nil) != ok {
			t.Errorf("allow 10/8 and 127.0.0.1, %s: %v, want allowed %v", a, err, ok)
		}
	}
	all := CallbackPolicy{AllowAll: true}
	if err := all.check(netip.MustParseAddr("169.254.169.254")); err != nil {
		t.Errorf("allow any: %v", err)
	}
}

// TestCallbackURLAtSubmission: an address literal or localhost that the
// policy refuses is a 400-kind error at submission; names pass (they are
// checked on the address they resolve to when the callback is sent).
func TestCallbackURLAtSubmission(t *testing.T) {
	var p CallbackPolicy
	for _, u := range []string{"http://127.0.0.1:8080/x", "http://[::1]/", "http://localhost:9/", "http://api.localhost/", "https://169.254.169.254/"} {
		pu, _ := url.Parse(u)
		if err := p.checkURL(pu); !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), u) {
			t.Errorf("%s: %v, want an invalid-input error naming the URL", u, err)
		}
	}
	for _, u := range []string{"https://example.com/cb", "http://93.184.216.34/"} {
		pu, _ := url.Parse(u)
		if err := p.checkURL(pu); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}

// TestCallbackClientChecksWhatItDials: the callback client refuses to dial
// a loopback server, whatever the URL names, and reaches it once the
// address is allowed; a redirect to a refused address is refused too.
func TestCallbackClientChecksWhatItDials(t *testing.T) {
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "http://127.0.0.2:1/elsewhere", http.StatusFound)
		}
	}))
	defer srv.Close()
	// By a name that resolves to loopback, as a rebinding name would.
	byName := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)

	res, err := CallbackPolicy{}.client().Post(byName, "text/plain", nil)
	if err == nil {
		_ = res.Body.Close()
	}
	if !refused(err) || hits != 0 {
		t.Fatalf("default policy dialled loopback: %v (server hits %d)", err, hits)
	}

	allowed := CallbackPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}.client()
	res, err = allowed.Post(byName, "text/plain", nil)
	if err != nil || res.StatusCode != http.StatusOK || hits != 1 {
		t.Fatalf("allowed loopback: %v, hits %d", err, hits)
	}
	_ = res.Body.Close()

	res, err = allowed.Get(srv.URL + "/redirect")
	if err == nil {
		_ = res.Body.Close()
	}
	if !refused(err) || hits != 2 {
		t.Fatalf("redirect to 127.0.0.2: %v (hits %d), want refused after the first hop", err, hits)
	}
}
