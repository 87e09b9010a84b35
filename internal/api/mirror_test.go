package api_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/wisp-run/wisp/internal/api"
	"github.com/wisp-run/wisp/internal/core"
)

// TestMirror: PUT …/mirror appends an entry with the mirror and the
// current weights; bad settings are 4xx naming the field and change
// nothing; DELETE turns it off; the report answers for known services.
func TestMirror(t *testing.T) {
	h := newHarness(t)
	h.fixture()
	const path = "/v1/services/hello/mirror"
	before := h.state()
	for _, tc := range []struct {
		name, body, field, msg string
		status                 int
	}{
		{"unknown version", `{"version":9,"percent":10}`, "mirror.version", "service hello has no version 9", 422},
		{"the 100% version", `{"version":1,"percent":10}`, "mirror.version", "version 1 already gets 100% of the traffic", 422},
		{"no version", `{"percent":10}`, "mirror.version", "must be a version number", 422},
		{"percent 0", `{"version":2,"percent":0}`, "mirror.percent", "between 1 and 100, got 0", 422},
		{"percent 101", `{"version":2,"percent":101}`, "mirror.percent", "between 1 and 100, got 101", 422},
		{"empty field path", `{"version":2,"percent":10,"ignore_fields":["data..id"]}`, "mirror.ignore_fields[0]", "empty name between dots", 422},
		{"wildcard field path", `{"version":2,"percent":10,"ignore_fields":["ok","data[0].id"]}`, "mirror.ignore_fields[1]", "no spaces, brackets or wildcards", 422},
		{"bad header", `{"version":2,"percent":10,"ignore_headers":["X Request"]}`, "mirror.ignore_headers[0]", "is not a header name", 422},
		{"unknown field", `{"version":2,"percent":10,"methods":"all"}`, "methods", "unknown field", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := h.call("PUT", path, tc.body, nil)
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.msg) || !strings.Contains(string(body), `"field":"`+tc.field+`"`) {
				t.Fatalf("got %d %s, want %d with field %s and %q", resp.StatusCode, body, tc.status, tc.field, tc.msg)
			}
		})
	}
	if resp, body := h.call("PUT", "/v1/services/nope/mirror", `{"version":2,"percent":10}`, nil); resp.StatusCode != 404 {
		t.Fatalf("mirror of an unknown service: %d %s, want 404", resp.StatusCode, body)
	}
	if after := h.state(); after != before {
		t.Fatalf("a refused mirror changed state:\nbefore %s\nafter  %s", before, after)
	}

	type entry struct {
		Weights []struct{ Version, Percent int } `json:"weights"`
		Mirror  *struct {
			Version      int      `json:"version"`
			Percent      int      `json:"percent"`
			IgnoreFields []string `json:"ignore_fields"`
		} `json:"mirror"`
		Message string `json:"message"`
	}
	resp, body := h.call("PUT", path, `{"version":2,"percent":10,"ignore_fields":["timestamp"]}`, nil)
	var got entry
	if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != 200 || got.Mirror == nil || got.Mirror.Version != 2 ||
		got.Mirror.Percent != 10 || len(got.Weights) != 1 || got.Weights[0].Version != 1 || !strings.Contains(got.Message, "mirror 10% of requests to v2") {
		t.Fatalf("PUT mirror: %d %s", resp.StatusCode, body)
	}
	if resp, body := h.call("DELETE", "/v1/services/hello/versions/2", "", nil); resp.StatusCode != 409 || !strings.Contains(string(body), "receives mirrored requests") {
		t.Fatalf("delete the mirror's version: %d %s, want 409", resp.StatusCode, body)
	}
	if resp, body := h.call("GET", path+"/report", "", nil); resp.StatusCode != 200 || !strings.Contains(string(body), `"pairs":[]`) {
		t.Fatalf("report: %d %s", resp.StatusCode, body)
	}
	if resp, _ := h.call("GET", "/v1/services/nope/mirror/report", "", nil); resp.StatusCode != 404 {
		t.Fatalf("report of an unknown service: %d, want 404", resp.StatusCode)
	}
	// Moving all the traffic to the mirror's version turns the mirror
	// off only when asked: a PUT of the traffic with it is refused.
	if resp, body := h.call("PUT", "/v1/services/hello/traffic", `{"weights":[{"version":2,"percent":100}],"mirror":{"version":2,"percent":10}}`, nil); resp.StatusCode != 422 {
		t.Fatalf("traffic with a mirror to its 100%% version: %d %s, want 422", resp.StatusCode, body)
	}
	resp, body = h.call("DELETE", path, "", nil)
	got = entry{}
	if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != 200 || got.Mirror != nil || got.Message != "mirror to v2 off" {
		t.Fatalf("DELETE mirror: %d %s", resp.StatusCode, body)
	}
	_, body = h.call("GET", "/v1/services/hello/traffic/history", "", nil)
	if n := strings.Count(string(body), `"mirror":{`); n != 1 {
		t.Fatalf("history: %d entries with a mirror, want 1: %s", n, body)
	}
}

// fakeLeaderMirrors answers the combined report while leading.
type fakeLeaderMirrors struct{ leading bool }

func (f fakeLeaderMirrors) MirrorReport(_ context.Context, service string) (core.MirrorReport, error) {
	return core.MirrorReport{Service: service, Pairs: []core.MirrorPair{}, Replicas: 1}, nil
}

func (f fakeLeaderMirrors) LeaderMirrorReport(service string) (core.MirrorReport, error) {
	if !f.leading {
		return core.MirrorReport{}, core.Conflictf("this replica does not lead")
	}
	return core.MirrorReport{Service: service, Pairs: []core.MirrorPair{{Primary: 1, Mirror: 2, Compared: 7}}, Replicas: 3}, nil
}

// TestLeaderMirrorReport: the followers' route answers the leader's
// combined report, 409 on a replica that does not lead, 404 for an
// unknown service and 503 where nothing combines reports.
func TestLeaderMirrorReport(t *testing.T) {
	const path = "/v1/internal/services/hello/mirror/report"
	for _, tc := range []struct {
		name   string
		opts   []api.Option
		path   string
		status int
		says   string
	}{
		{"leader", []api.Option{api.WithMirrorReports(fakeLeaderMirrors{leading: true})}, path, 200, `"replicas":3`},
		{"follower", []api.Option{api.WithMirrorReports(fakeLeaderMirrors{})}, path, 409, "does not lead"},
		{"unknown service", []api.Option{api.WithMirrorReports(fakeLeaderMirrors{leading: true})}, "/v1/internal/services/nope/mirror/report", 404, "nope"},
		{"no combined reports", nil, path, 503, "answers no replica's mirror report"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.opts...)
			h.fixture()
			resp, body := h.call("GET", tc.path, "", nil)
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.says) {
				t.Fatalf("got %d %s, want %d saying %q", resp.StatusCode, body, tc.status, tc.says)
			}
		})
	}
}
