package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/wisp-run/wisp/internal/core"
)

// Headers of an async submission (docs/async.md).
const (
	HeaderCallID         = "Wisp-Call-Id"
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderCallbackURL    = "X-Callback-Url"
)

func callPath(id string) string { return "/v1/calls/" + url.PathEscape(id) }

// GetCall returns async call id.
func (c *Client) GetCall(ctx context.Context, id string) (core.Call, error) {
	var out core.Call
	err := c.do(ctx, http.MethodGet, callPath(id), nil, &out)
	return out, err
}

// ListCalls returns service's async calls, newest first: those in state
// ("" for any), at most limit (0 for the server's default).
func (c *Client) ListCalls(ctx context.Context, service, state string, limit int) ([]core.Call, error) {
	q := url.Values{}
	if state != "" {
		q.Set("state", state)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := svcPath(service) + "/calls"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out struct {
		Calls []core.Call `json:"calls"`
	}
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out.Calls, err
}

// RetryCall queues a dead or failed call again with a fresh budget of
// attempts; for a call in another state the error is core.ErrConflict.
func (c *Client) RetryCall(ctx context.Context, id string) (core.Call, error) {
	var out core.Call
	err := c.do(ctx, http.MethodPost, callPath(id)+"/retry", nil, &out)
	return out, err
}

func triggerPath(name string) string { return "/v1/triggers/" + url.PathEscape(name) }

// CreateTrigger creates a trigger.
func (c *Client) CreateTrigger(ctx context.Context, t core.Trigger) (core.Trigger, error) {
	var out core.Trigger
	err := c.do(ctx, http.MethodPost, "/v1/triggers", t, &out)
	return out, err
}

// ListTriggers lists every trigger.
func (c *Client) ListTriggers(ctx context.Context) ([]core.Trigger, error) {
	var out struct {
		Triggers []core.Trigger `json:"triggers"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/triggers", nil, &out)
	return out.Triggers, err
}

// GetTrigger returns a trigger with its recent deliveries.
func (c *Client) GetTrigger(ctx context.Context, name string) (core.Trigger, error) {
	var out core.Trigger
	err := c.do(ctx, http.MethodGet, triggerPath(name), nil, &out)
	return out, err
}

// DeleteTrigger deletes a trigger; calls it made are kept.
func (c *Client) DeleteTrigger(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, triggerPath(name), nil, nil)
}

// PublishedEvent is the answer to a published event.
type PublishedEvent struct {
	ID      string `json:"id"`
	Subject string `json:"subject"`
}

// PublishEvent publishes a CloudEvent on subject ("" lets the server pick
// events.<type>). header carries the event's attributes in binary mode
// (ce-id, ce-type, ...) and contentType the body's type; with contentType
// application/cloudevents+json the body is the whole event (structured
// mode) and header may be nil.
func (c *Client) PublishEvent(ctx context.Context, subject, contentType string, header http.Header, body []byte) (PublishedEvent, error) {
	path := "/v1/events"
	if subject != "" {
		path += "?" + url.Values{"subject": {subject}}.Encode()
	}
	resp, err := c.sendHeader(ctx, c.http, http.MethodPost, path, contentType, bytes.NewReader(body), header)
	if err != nil {
		return PublishedEvent{}, err
	}
	defer resp.Body.Close()
	var out PublishedEvent
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
		return out, fmt.Errorf("decode response of POST %s: %w", path, err)
	}
	return out, nil
}

func schedulePath(name string) string { return "/v1/schedules/" + url.PathEscape(name) }

// CreateSchedule creates a schedule.
func (c *Client) CreateSchedule(ctx context.Context, s core.Schedule) (core.Schedule, error) {
	var out core.Schedule
	err := c.do(ctx, http.MethodPost, "/v1/schedules", s, &out)
	return out, err
}

// ListSchedules lists every schedule.
func (c *Client) ListSchedules(ctx context.Context) ([]core.Schedule, error) {
	var out struct {
		Schedules []core.Schedule `json:"schedules"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/schedules", nil, &out)
	return out.Schedules, err
}

// GetSchedule returns a schedule with its recent runs and next fire time.
func (c *Client) GetSchedule(ctx context.Context, name string) (core.Schedule, error) {
	var out core.Schedule
	err := c.do(ctx, http.MethodGet, schedulePath(name), nil, &out)
	return out, err
}

// UpdateSchedule changes the fields of a schedule set in patch.
func (c *Client) UpdateSchedule(ctx context.Context, name string, patch core.SchedulePatch) (core.Schedule, error) {
	var out core.Schedule
	err := c.do(ctx, http.MethodPatch, schedulePath(name), patch, &out)
	return out, err
}

// DeleteSchedule deletes a schedule; calls it made are kept.
func (c *Client) DeleteSchedule(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, schedulePath(name), nil, nil)
}

// NextRuns returns the next n fire times of a schedule as the server
// computed them, RFC 3339 in the schedule's time zone.
func (c *Client) NextRuns(ctx context.Context, name string, n int) ([]string, error) {
	path := schedulePath(name) + "/next"
	if n > 0 {
		path += "?n=" + strconv.Itoa(n)
	}
	var out struct {
		Next []string `json:"next"`
	}
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out.Next, err
}

// RunSchedule fires a schedule now, outside its cron, and returns the ID
// of the async call it made.
func (c *Client) RunSchedule(ctx context.Context, name string) (string, error) {
	var out struct {
		CallID string `json:"call_id"`
	}
	err := c.do(ctx, http.MethodPost, schedulePath(name)+"/run", nil, &out)
	return out.CallID, err
}

// RouterURL returns the URL at which the router serves path (with its
// query, if any) of service, for a sync call or, with async, an async
// submission. With router (the router's base URL, such as
// "http://127.0.0.1:8080") it is under /s/<service>/ or
// /async/<service>/, which needs no DNS for the service's host. Without,
// it is svcURL, the service's own URL (its "url" in GET
// /v1/services/{name}); the caller asks for an async call there with
// Prefer: respond-async. A host under .localhost is reached at 127.0.0.1
// as router, since not every resolver maps *.localhost to loopback
// (RFC 6761, section 6.3, lets it but does not make it).
func RouterURL(router, service, svcURL, path string, async bool) (string, error) {
	if path == "" {
		path = "/"
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	if router == "" {
		u, err := url.Parse(svcURL)
		if err != nil || u.Host == "" {
			return "", fmt.Errorf("service %q has no router URL (%q): pass the router's address with --router", service, svcURL)
		}
		host := strings.ToLower(u.Hostname())
		if host != "localhost" && !strings.HasSuffix(host, ".localhost") {
			return strings.TrimRight(svcURL, "/") + path, nil
		}
		loop := "127.0.0.1"
		if p := u.Port(); p != "" {
			loop = net.JoinHostPort(loop, p)
		}
		router = u.Scheme + "://" + loop
	}
	if !strings.Contains(router, "://") {
		router = "http://" + router
	}
	prefix := "/s/"
	if async {
		prefix = "/async/"
	}
	return strings.TrimRight(router, "/") + prefix + url.PathEscape(service) + path, nil
}

// Invocation is a request to a service through the router.
type Invocation struct {
	// URL is where to send it, from RouterURL.
	URL    string
	Method string // default GET, or POST with a body
	Header http.Header
	Body   []byte
	// Async asks for an async call (Prefer: respond-async, RFC 7240),
	// with an optional IdempotencyKey and a Callback URL told of the
	// result.
	Async          bool
	IdempotencyKey string
	Callback       string
}

// Invoke sends inv to the router and returns its answer, whatever its
// status; the caller closes the body. It never sends the admin token: the
// router passes a request's headers on to the service.
func (c *Client) Invoke(ctx context.Context, inv Invocation) (*http.Response, error) {
	method := inv.Method
	if method == "" {
		method = http.MethodGet
		if inv.Body != nil {
			method = http.MethodPost
		}
	}
	var body io.Reader
	if inv.Body != nil {
		body = bytes.NewReader(inv.Body)
	}
	req, err := http.NewRequestWithContext(ctx, method, inv.URL, body)
	if err != nil {
		return nil, fmt.Errorf("invoke: %w", err)
	}
	for k, v := range inv.Header {
		req.Header[http.CanonicalHeaderKey(k)] = v
	}
	if inv.Async {
		req.Header.Add("Prefer", "respond-async")
		if inv.IdempotencyKey != "" {
			req.Header.Set(HeaderIdempotencyKey, inv.IdempotencyKey)
		}
		if inv.Callback != "" {
			req.Header.Set(HeaderCallbackURL, inv.Callback)
		}
	}
	// A redirect is the service's answer, shown as such, not followed.
	hc := *c.streaming
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the Wisp router at %s: %w (set --router or WISP_ROUTER_URL to its address)", req.URL.Host, unwrapURLError(err))
	}
	return resp, nil
}

// Submitted is the router's answer to an async submission.
type Submitted struct {
	ID        string `json:"id"`
	Service   string `json:"service"`
	State     string `json:"state"`
	StatusURL string `json:"status_url"`
	Duplicate bool   `json:"duplicate"`
}

// InvokeAsync submits inv (Async is implied) and returns the stored call.
// An answer other than 202 is an *Error with the router's message.
func (c *Client) InvokeAsync(ctx context.Context, inv Invocation) (Submitted, error) {
	// No Accept: application/json to get the router's errors as JSON: the
	// call keeps the request's headers and would send it to the service.
	inv.Async = true
	resp, err := c.Invoke(ctx, inv)
	if err != nil {
		return Submitted{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Submitted{}, fmt.Errorf("read the router's answer: %w", err)
	}
	if resp.StatusCode != http.StatusAccepted {
		return Submitted{}, routerError(resp, b)
	}
	var out Submitted
	if err := json.Unmarshal(b, &out); err != nil {
		return out, fmt.Errorf("decode the router's answer: %w", err)
	}
	if out.ID == "" {
		out.ID = resp.Header.Get(HeaderCallID)
	}
	return out, nil
}

// routerError reads an error answer of the router ({"error":{"message"}}
// or a line of text) or, when the service itself answered, says so.
func routerError(resp *http.Response, b []byte) error {
	var eb struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	e := &Error{Status: resp.StatusCode}
	switch {
	case json.Unmarshal(b, &eb) == nil && eb.Error.Message != "":
		e.Code, e.Message = eb.Error.Code, eb.Error.Message
	case len(b) > 0 && len(b) < 500:
		e.Message = fmt.Sprintf("the router answered %s: %s", resp.Status, strings.TrimSpace(string(b)))
	default:
		e.Message = "the router answered " + resp.Status
	}
	if e.Code == "" {
		e.Code = "http_" + strconv.Itoa(resp.StatusCode)
	}
	return e
}
