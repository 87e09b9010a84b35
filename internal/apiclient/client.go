// Package apiclient is a typed Go client of Wisp's admin API, used by the CLI
// and by end-to-end tests.
package apiclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wisp-run/wisp/internal/core"
)

// Client talks to one Wisp admin server.
type Client struct {
	base  string
	token string
	// name is sent as the Wisp-Client header: who makes the change
	// (traffic.changed events report it). "cli" unless WithClientName.
	name string
	http *http.Client
	// streaming serves requests that may take as long as a build:
	// uploads and followed logs. Their context bounds them.
	streaming *http.Client
}

// Option configures a Client.
type Option func(*Client)

// WithRootCAs trusts the certificates in pool for an https:// server (a
// self-signed admin certificate, say) instead of the system's.
func WithRootCAs(pool *x509.CertPool) Option {
	return func(c *Client) {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		c.http.Transport, c.streaming.Transport = tr, tr
	}
}

// WithClientName names the client in the Wisp-Client header ("cli" by
// default; the dashboard sends "dashboard").
func WithClientName(name string) Option {
	return func(c *Client) { c.name = name }
}

// WithTransport sends every request through rt instead of the network: the
// dashboard calls the admin API's handler in the same process this way.
func WithTransport(rt http.RoundTripper) Option {
	return func(c *Client) { c.http.Transport, c.streaming.Transport = rt, rt }
}

// New returns a client of the admin server at base (for example
// "http://127.0.0.1:8081" or "https://wisp.example:8081") that sends token.
func New(base, token string, opts ...Option) *Client {
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	c := &Client{base: strings.TrimRight(base, "/"), token: token, name: "cli", http: &http.Client{Timeout: 5 * time.Minute}, streaming: &http.Client{}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Error is an error answered by the server. Its message is the server's.
type Error struct {
	Status  int
	Code    string
	Message string
	Field   string
}

func (e *Error) Error() string { return e.Message }

// Is lets callers test the kind with errors.Is(err, core.ErrNotFound).
func (e *Error) Is(target error) bool {
	switch target {
	case core.ErrNotFound:
		return e.Code == "not_found"
	case core.ErrAlreadyExists:
		return e.Code == "already_exists"
	case core.ErrConflict:
		return e.Code == "conflict"
	case core.ErrInvalid:
		return e.Code == "invalid" || e.Code == "bad_request"
	case core.ErrUnauthorized:
		return e.Code == "unauthorized"
	case core.ErrUnavailable:
		return e.Code == "unavailable"
	case core.ErrTooLarge:
		return e.Code == "too_large"
	case core.ErrPreconditionFailed:
		return e.Code == "precondition_failed"
	}
	return false
}

// Raw sends a request and returns the response body of a 2xx answer as is.
func (c *Client) Raw(ctx context.Context, method, path string, body any) ([]byte, error) {
	return c.raw(ctx, method, path, body, nil)
}

// raw is Raw with extra request headers.
func (c *Client) raw(ctx context.Context, method, path string, body any, header http.Header) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	ctype := ""
	if body != nil {
		ctype = "application/json"
	}
	resp, err := c.sendHeader(ctx, c.http, method, path, ctype, rd, header)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read response of %s %s: %w", method, path, err)
	}
	return b, nil
}

// send sends a request with the token and returns a 2xx response; any other
// answer becomes an *Error with the server's message.
func (c *Client) send(ctx context.Context, hc *http.Client, method, path, ctype string, body io.Reader) (*http.Response, error) {
	return c.sendHeader(ctx, hc, method, path, ctype, body, nil)
}

// sendHeader is send with extra request headers.
func (c *Client) sendHeader(ctx context.Context, hc *http.Client, method, path, ctype string, body io.Reader, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "application/json")
	if c.name != "" {
		req.Header.Set(core.ClientHeader, c.name)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := hc.Do(req)
	var unknownCA x509.UnknownAuthorityError
	switch {
	case errors.As(err, &unknownCA):
		return nil, fmt.Errorf("the Wisp server at %s has a certificate this client does not trust: %w (for a self-signed one, pass its certificate with --ca-cert FILE or WISP_CA_CERT)", c.base, unwrapURLError(err))
	case err != nil && strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return nil, fmt.Errorf("the Wisp server at %s speaks plain HTTP: use --server http://%s", c.base, strings.TrimPrefix(c.base, "https://"))
	case err != nil:
		return nil, fmt.Errorf("cannot reach the Wisp server at %s: %w (is `wisp serve` running? set --server or WISP_SERVER)", c.base, unwrapURLError(err))
	}
	if resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode == http.StatusBadRequest && bytes.Contains(b, []byte("Client sent an HTTP request to an HTTPS server")) {
		return nil, &Error{Status: resp.StatusCode, Code: "bad_request",
			Message: fmt.Sprintf("the Wisp server at %s speaks HTTPS: use --server https://%s", c.base, strings.TrimPrefix(c.base, "http://"))}
	}
	var eb struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Field   string `json:"field"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &eb) == nil && eb.Error.Message != "" {
		return nil, &Error{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message, Field: eb.Error.Field}
	}
	return nil, &Error{Status: resp.StatusCode, Code: "http_" + strconv.Itoa(resp.StatusCode),
		Message: fmt.Sprintf("%s %s: %s", method, path, resp.Status)}
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	return c.doHeader(ctx, method, path, body, out, nil)
}

func (c *Client) doHeader(ctx context.Context, method, path string, body, out any, header http.Header) error {
	b, err := c.raw(ctx, method, path, body, header)
	if err != nil {
		return err
	}
	if out == nil || len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode response of %s %s: %w", method, path, err)
	}
	return nil
}

func svcPath(name string) string { return "/v1/services/" + url.PathEscape(name) }

// Info returns what the server says about itself.
func (c *Client) Info(ctx context.Context) (core.ServerInfo, error) {
	var out core.ServerInfo
	err := c.do(ctx, "GET", "/v1/info", nil, &out)
	return out, err
}

// CreateService creates a service; policy may be empty for the defaults.
func (c *Client) CreateService(ctx context.Context, name string, policy core.PolicyPatch) (core.Service, error) {
	var out core.Service
	err := c.do(ctx, "POST", "/v1/services", map[string]any{"name": name, "policy": policy}, &out)
	return out, err
}

// ListServices lists all services.
func (c *Client) ListServices(ctx context.Context) ([]core.Service, error) {
	var out struct {
		Services []core.Service `json:"services"`
	}
	err := c.do(ctx, "GET", "/v1/services", nil, &out)
	return out.Services, err
}

// GetService returns one service.
func (c *Client) GetService(ctx context.Context, name string) (core.Service, error) {
	var out core.Service
	err := c.do(ctx, "GET", svcPath(name), nil, &out)
	return out, err
}

// UpdatePolicy changes the fields of the scaling policy set in patch.
func (c *Client) UpdatePolicy(ctx context.Context, name string, patch core.PolicyPatch) (core.Service, error) {
	var out core.Service
	err := c.do(ctx, "PATCH", svcPath(name), map[string]any{"policy": patch}, &out)
	return out, err
}

// DeleteService deletes a service with its versions and history.
func (c *Client) DeleteService(ctx context.Context, name string) error {
	return c.do(ctx, "DELETE", svcPath(name), nil, nil)
}

// CreateVersion creates a version of service.
func (c *Client) CreateVersion(ctx context.Context, service string, spec core.VersionSpec) (core.Version, error) {
	var out core.Version
	err := c.do(ctx, "POST", svcPath(service)+"/versions", spec, &out)
	return out, err
}

// ListVersions lists a service's versions.
func (c *Client) ListVersions(ctx context.Context, service string) ([]core.Version, error) {
	var out struct {
		Versions []core.Version `json:"versions"`
	}
	err := c.do(ctx, "GET", svcPath(service)+"/versions", nil, &out)
	return out.Versions, err
}

// GetVersion returns one version.
func (c *Client) GetVersion(ctx context.Context, service string, number int) (core.Version, error) {
	var out core.Version
	err := c.do(ctx, "GET", svcPath(service)+"/versions/"+strconv.Itoa(number), nil, &out)
	return out, err
}

// DeleteVersion deletes a version that carries no traffic.
func (c *Client) DeleteVersion(ctx context.Context, service string, number int) error {
	return c.do(ctx, "DELETE", svcPath(service)+"/versions/"+strconv.Itoa(number), nil, nil)
}

// SetTraffic sets a new split, whatever the current one is.
func (c *Client) SetTraffic(ctx context.Context, service string, t core.Traffic) (core.TrafficEntry, error) {
	return c.SetTrafficIf(ctx, service, t, 0)
}

// SetTrafficIf sets a new split only while entry ifEntry is the current one
// (If-Match): a client that read the split with GetTraffic, changed it and
// writes it back passes the ID it read, so that it never overwrites a change
// it has not seen. core.AnyEntry only requires a current entry; 0 sends no
// condition. When the split has changed, the error is an *Error for which
// errors.Is(err, core.ErrPreconditionFailed) holds, and nothing changed.
func (c *Client) SetTrafficIf(ctx context.Context, service string, t core.Traffic, ifEntry int64) (core.TrafficEntry, error) {
	var out core.TrafficEntry
	err := c.doHeader(ctx, "PUT", svcPath(service)+"/traffic", t, &out, ifMatch(ifEntry))
	return out, err
}

// ifMatch is the If-Match header for a condition on the current traffic
// entry: its ETag is its ID, quoted.
func ifMatch(ifEntry int64) http.Header {
	switch {
	case ifEntry == core.AnyEntry:
		return http.Header{"If-Match": {"*"}}
	case ifEntry > 0:
		return http.Header{"If-Match": {`"` + strconv.FormatInt(ifEntry, 10) + `"`}}
	}
	return nil
}

// GetTraffic returns the current split. Its ID is the entry's ETag: pass
// it to SetTrafficIf or RollbackTrafficIf to write only while it is still
// the current entry.
func (c *Client) GetTraffic(ctx context.Context, service string) (core.TrafficEntry, error) {
	var out core.TrafficEntry
	err := c.do(ctx, "GET", svcPath(service)+"/traffic", nil, &out)
	return out, err
}

// TrafficHistory returns every split, oldest first.
func (c *Client) TrafficHistory(ctx context.Context, service string) ([]core.TrafficEntry, error) {
	var out struct {
		Entries []core.TrafficEntry `json:"entries"`
	}
	err := c.do(ctx, "GET", svcPath(service)+"/traffic/history", nil, &out)
	return out.Entries, err
}

// RollbackTraffic re-applies entry toEntry, or with 0 the one before the
// current one, as a new entry.
func (c *Client) RollbackTraffic(ctx context.Context, service string, toEntry int64) (core.TrafficEntry, error) {
	return c.RollbackTrafficIf(ctx, service, toEntry, 0)
}

// RollbackTrafficIf is RollbackTraffic only while entry ifEntry is the
// current one, as for SetTrafficIf.
func (c *Client) RollbackTrafficIf(ctx context.Context, service string, toEntry, ifEntry int64) (core.TrafficEntry, error) {
	var out core.TrafficEntry
	var body any
	if toEntry != 0 {
		body = map[string]int64{"to_entry": toEntry}
	}
	err := c.doHeader(ctx, "POST", svcPath(service)+"/traffic/rollback", body, &out, ifMatch(ifEntry))
	return out, err
}

// Instances lists the running instances of service, or of every service
// when service is "".
func (c *Client) Instances(ctx context.Context, service string) ([]core.InstanceInfo, error) {
	path := "/v1/instances"
	if service != "" {
		path = svcPath(service) + "/instances"
	}
	var out struct {
		Instances []core.InstanceInfo `json:"instances"`
	}
	err := c.do(ctx, "GET", path, nil, &out)
	return out.Instances, err
}

// StartRollout starts a rollout of service (docs/rollouts.md).
func (c *Client) StartRollout(ctx context.Context, service string, spec core.RolloutSpec) (core.Rollout, error) {
	var out core.Rollout
	err := c.do(ctx, "POST", svcPath(service)+"/rollout", spec, &out)
	return out, err
}

// GetRollout returns the service's newest rollout.
func (c *Client) GetRollout(ctx context.Context, service string) (core.Rollout, error) {
	var out core.Rollout
	err := c.do(ctx, "GET", svcPath(service)+"/rollout", nil, &out)
	return out, err
}

// RolloutAction applies action (core.RolloutPause, …) to the service's
// active rollout.
func (c *Client) RolloutAction(ctx context.Context, service, action string) (core.Rollout, error) {
	var out core.Rollout
	err := c.do(ctx, "POST", svcPath(service)+"/rollout/"+action, nil, &out)
	return out, err
}

// SetMirror copies a share of service's requests to m.Version and compares
// the answers; it appends a traffic entry with the current split.
func (c *Client) SetMirror(ctx context.Context, service string, m core.Mirror) (core.TrafficEntry, error) {
	var e core.TrafficEntry
	err := c.do(ctx, "PUT", svcPath(service)+"/mirror", m, &e)
	return e, err
}

// DeleteMirror stops mirroring service's requests.
func (c *Client) DeleteMirror(ctx context.Context, service string) (core.TrafficEntry, error) {
	var e core.TrafficEntry
	err := c.do(ctx, "DELETE", svcPath(service)+"/mirror", nil, &e)
	return e, err
}

// MirrorReport returns the answering replica's report of service's mirror.
func (c *Client) MirrorReport(ctx context.Context, service string) (core.MirrorReport, error) {
	var rep core.MirrorReport
	err := c.do(ctx, "GET", svcPath(service)+"/mirror/report", nil, &rep)
	return rep, err
}
