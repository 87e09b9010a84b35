package apiclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wisp-run/wisp/internal/apiclient"
	"github.com/wisp-run/wisp/internal/core"
)

// seen is a request as the fake API received it.
type seen struct {
	Method, Path, Query, ContentType, Auth string
	Body                                   string
	Header                                 http.Header
}

// fakeAPI answers every request with status and answer, and records it.
func fakeAPI(t testing.TB, status int, answer string) (*apiclient.Client, *seen) {
	t.Helper()
	got := &seen{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		*got = seen{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, ContentType: r.Header.Get("Content-Type"),
			Auth: r.Header.Get("Authorization"), Body: string(b), Header: r.Header.Clone()}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	return apiclient.New(srv.URL, "tok"), got
}

func TestCallsTriggersSchedules(t *testing.T) {
	suspend := false
	cases := []struct {
		name   string
		call   func(ctx context.Context, c *apiclient.Client) (any, error)
		status int
		answer string
		// method, path, query and body the server must see.
		method, path, query, body string
		want                      any
	}{
		{"get call", func(ctx context.Context, c *apiclient.Client) (any, error) { return c.GetCall(ctx, "c1") },
			200, `{"id":"c1","state":"dead","attempts":[{"status":500}]}`, "GET", "/v1/calls/c1", "", "",
			core.Call{ID: "c1", State: "dead", Attempts: []core.CallAttempt{{Status: 500}}}},
		{"list calls", func(ctx context.Context, c *apiclient.Client) (any, error) {
			return c.ListCalls(ctx, "hello", "dead", 5)
		},
			200, `{"calls":[{"id":"c1"}]}`, "GET", "/v1/services/hello/calls", "limit=5&state=dead", "",
			[]core.Call{{ID: "c1"}}},
		{"list calls, no query", func(ctx context.Context, c *apiclient.Client) (any, error) { return c.ListCalls(ctx, "hello", "", 0) },
			200, `{"calls":[]}`, "GET", "/v1/services/hello/calls", "", "", []core.Call{}},
		{"retry call", func(ctx context.Context, c *apiclient.Client) (any, error) { return c.RetryCall(ctx, "c1") },
			202, `{"id":"c1","state":"queued"}`, "POST", "/v1/calls/c1/retry", "", "", core.Call{ID: "c1", State: "queued"}},
		{"create trigger", func(ctx context.Context, c *apiclient.Client) (any, error) {
			return c.CreateTrigger(ctx, core.Trigger{Name: "t", Service: "s", Subject: "orders.>", Filters: []string{"type=x"}})
		}, 201, `{"name":"t","service":"s","subject":"orders.>"}`, "POST", "/v1/triggers", "",
			`{"name":"t","service":"s","subject":"orders.\u003e","filters":["type=x"],"created_at":"0001-01-01T00:00:00Z"}`,
			core.Trigger{Name: "t", Service: "s", Subject: "orders.>"}},
		{"list triggers", func(ctx context.Context, c *apiclient.Client) (any, error) { return c.ListTriggers(ctx) },
			200, `{"triggers":[{"name":"t"}]}`, "GET", "/v1/triggers", "", "", []core.Trigger{{Name: "t"}}},
		{"get trigger", func(ctx context.Context, c *apiclient.Client) (any, error) { return c.GetTrigger(ctx, "t") },
			200, `{"name":"t","deliveries":[{"id":"c9"}]}`, "GET", "/v1/triggers/t", "", "",
			core.Trigger{Name: "t", Deliveries: []core.Call{{ID: "c9"}}}},
		{"delete trigger", func(ctx context.Context, c *apiclient.Client) (any, error) { return nil, c.DeleteTrigger(ctx, "t") },
			204, ``, "DELETE", "/v1/triggers/t", "", "", nil},
		{"publish event", func(ctx context.Context, c *apiclient.Client) (any, error) {
			return c.PublishEvent(ctx, "orders.created", "application/json", http.Header{"Ce-Id": {"e1"}}, []byte(`{"n":1}`))
		}, 202, `{"id":"e1","subject":"orders.created"}`, "POST", "/v1/events", "subject=orders.created", `{"n":1}`,
			apiclient.PublishedEvent{ID: "e1", Subject: "orders.created"}},
		{"create schedule", func(ctx context.Context, c *apiclient.Client) (any, error) {
			return c.CreateSchedule(ctx, core.Schedule{Name: "tick", Service: "s", Cron: "@hourly"})
		}, 201, `{"name":"tick","cron":"@hourly"}`, "POST", "/v1/schedules", "",
			`{"name":"tick","service":"s","cron":"@hourly","created_at":"0001-01-01T00:00:00Z"}`,
			core.Schedule{Name: "tick", Cron: "@hourly"}},
		{"list schedules", func(ctx context.Context, c *apiclient.Client) (any, error) { return c.ListSchedules(ctx) },
			200, `{"schedules":[{"name":"tick"}]}`, "GET", "/v1/schedules", "", "", []core.Schedule{{Name: "tick"}}},
		{"get schedule", func(ctx context.Context, c *apiclient.Client) (any, error) { return c.GetSchedule(ctx, "tick") },
			200, `{"name":"tick","runs":[{"state":"skipped"}]}`, "GET", "/v1/schedules/tick", "", "",
			core.Schedule{Name: "tick", Runs: []core.ScheduleRun{{State: "skipped"}}}},
		{"suspend schedule", func(ctx context.Context, c *apiclient.Client) (any, error) {
			return c.UpdateSchedule(ctx, "tick", core.SchedulePatch{Suspend: &suspend})
		}, 200, `{"name":"tick"}`, "PATCH", "/v1/schedules/tick", "", `{"suspend":false}`, core.Schedule{Name: "tick"}},
		{"delete schedule", func(ctx context.Context, c *apiclient.Client) (any, error) { return nil, c.DeleteSchedule(ctx, "tick") },
			204, ``, "DELETE", "/v1/schedules/tick", "", "", nil},
		{"next runs", func(ctx context.Context, c *apiclient.Client) (any, error) { return c.NextRuns(ctx, "tick", 3) },
			200, `{"next":["2026-01-01T00:00:00Z"]}`, "GET", "/v1/schedules/tick/next", "n=3", "", []string{"2026-01-01T00:00:00Z"}},
		{"run schedule", func(ctx context.Context, c *apiclient.Client) (any, error) { return c.RunSchedule(ctx, "tick") },
			202, `{"call_id":"c7"}`, "POST", "/v1/schedules/tick/run", "", "", "c7"},
		{"escaped name", func(ctx context.Context, c *apiclient.Client) (any, error) { return c.GetCall(ctx, "a/b") },
			200, `{"id":"a/b"}`, "GET", "/v1/calls/a%2Fb", "", "", core.Call{ID: "a/b"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, got := fakeAPI(t, tc.status, tc.answer)
			out, err := tc.call(t.Context(), c)
			if err != nil {
				t.Fatal(err)
			}
			if got.Method != tc.method || got.Path != tc.path || got.Query != tc.query {
				t.Errorf("sent %s %s?%s, want %s %s?%s", got.Method, got.Path, got.Query, tc.method, tc.path, tc.query)
			}
			if got.Auth != "Bearer tok" {
				t.Errorf("Authorization %q, want the bearer token", got.Auth)
			}
			if got.Body != tc.body {
				t.Errorf("body %s, want %s", got.Body, tc.body)
			}
			if diff := cmp.Diff(tc.want, out); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCallErrors: the server's error object becomes an *Error whose kind
// errors.Is recognises.
func TestCallErrors(t *testing.T) {
	for _, tc := range []struct {
		name           string
		status         int
		answer         string
		kind           error
		code, msg, fld string
	}{
		{"not found", 404, `{"error":{"code":"not_found","message":"call \"x\" not found"}}`, core.ErrNotFound, "not_found", `call "x" not found`, ""},
		{"conflict", 409, `{"error":{"code":"conflict","message":"call x is queued"}}`, core.ErrConflict, "conflict", "call x is queued", ""},
		{"invalid field", 400, `{"error":{"code":"invalid","message":"bad cron","field":"cron"}}`, core.ErrInvalid, "invalid", "bad cron", "cron"},
		{"no JSON", 502, `bad gateway`, nil, "http_502", "POST /v1/calls/x/retry: 502 Bad Gateway", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := fakeAPI(t, tc.status, tc.answer)
			_, err := c.RetryCall(t.Context(), "x")
			var ae *apiclient.Error
			if !errors.As(err, &ae) {
				t.Fatalf("error %v (%T), want an *apiclient.Error", err, err)
			}
			if ae.Status != tc.status || ae.Code != tc.code || ae.Message != tc.msg || ae.Field != tc.fld {
				t.Errorf("got %+v, want status %d code %q message %q field %q", *ae, tc.status, tc.code, tc.msg, tc.fld)
			}
			if tc.kind != nil && !errors.Is(err, tc.kind) {
				t.Errorf("errors.Is(%v, %v) is false", err, tc.kind)
			}
		})
	}
}

func TestRouterURL(t *testing.T) {
	for _, tc := range []struct {
		name, router, svcURL, path string
		async                      bool
		want                       string
	}{
		{"router, sync", "http://127.0.0.1:8080", "", "/greet?x=1", false, "http://127.0.0.1:8080/s/hello/greet?x=1"},
		{"router, async", "127.0.0.1:8080/", "", "jobs", true, "http://127.0.0.1:8080/async/hello/jobs"},
		{"router, no path", "https://r.example", "", "", false, "https://r.example/s/hello/"},
		{"service URL", "", "https://hello.example.com", "/a", true, "https://hello.example.com/a"},
		{"localhost service URL", "", "http://hello.localhost:8080", "/a", false, "http://127.0.0.1:8080/s/hello/a"},
		{"localhost, async", "", "http://hello.localhost:8080", "/a", true, "http://127.0.0.1:8080/async/hello/a"},
		{"localhost, no port", "", "http://hello.localhost", "/", false, "http://127.0.0.1/s/hello/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := apiclient.RouterURL(tc.router, "hello", tc.svcURL, tc.path, tc.async)
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if _, err := apiclient.RouterURL("", "hello", "", "/", false); err == nil {
		t.Fatal("no router and no service URL: want an error that names --router")
	}
}

// TestInvokeAsync: the submission asks for an async call with its headers,
// never carries the admin token to the router, and reads the 202; an error
// of the router becomes an *Error with its message.
func TestInvokeAsync(t *testing.T) {
	var got seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = seen{Method: r.Method, Path: r.URL.Path, Body: string(b), Header: r.Header.Clone()}
		if r.URL.Path == "/async/nope/" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(404)
			_, _ = io.WriteString(w, `{"error":{"status":404,"message":"no service named \"nope\""}}`)
			return
		}
		w.Header().Set("Wisp-Call-Id", "c1")
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]any{"id": "c1", "service": "hello", "state": "queued", "status_url": "/v1/calls/c1"})
	}))
	defer srv.Close()
	c := apiclient.New("http://127.0.0.1:1", "admin-token")
	u, _ := apiclient.RouterURL(srv.URL, "hello", "", "/jobs", true)
	sub, err := c.InvokeAsync(t.Context(), apiclient.Invocation{URL: u, Body: []byte("x"), IdempotencyKey: "k1", Callback: "http://cb/",
		Header: http.Header{"X-Mine": {"1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(apiclient.Submitted{ID: "c1", Service: "hello", State: "queued", StatusURL: "/v1/calls/c1"}, sub); diff != "" {
		t.Errorf("submitted (-want +got):\n%s", diff)
	}
	if got.Method != "POST" || got.Path != "/async/hello/jobs" || got.Body != "x" {
		t.Errorf("sent %s %s %q, want POST /async/hello/jobs x", got.Method, got.Path, got.Body)
	}
	for k, want := range map[string]string{"Prefer": "respond-async", "Idempotency-Key": "k1", "X-Callback-Url": "http://cb/", "X-Mine": "1", "Authorization": ""} {
		if v := got.Header.Get(k); v != want {
			t.Errorf("header %s: %q, want %q", k, v, want)
		}
	}
	u, _ = apiclient.RouterURL(srv.URL, "nope", "", "/", true)
	_, err = c.InvokeAsync(t.Context(), apiclient.Invocation{URL: u})
	var ae *apiclient.Error
	if !errors.As(err, &ae) || ae.Status != 404 || ae.Message != `no service named "nope"` {
		t.Fatalf("error %v, want the router's 404 message", err)
	}
}
