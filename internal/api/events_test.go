package api_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/wisp-run/wisp/internal/api"
	"github.com/wisp-run/wisp/internal/core"
)

type sink struct {
	mu  sync.Mutex
	all []core.LogEntry
}

func (s *sink) Append(e core.LogEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.all = append(s.all, e)
}

func (s *sink) take() []core.LogEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.all
	s.all = nil
	return out
}

// TestTrafficChangedEvents: every change of traffic through the API is a
// traffic.changed event saying who made it, the new split and its entry;
// a refused change is none.
func TestTrafficChangedEvents(t *testing.T) {
	s := &sink{}
	h := newHarness(t, api.WithEvents(s))
	h.fixture()
	// The first versions of hello and other got all the traffic.
	got := s.take()
	if len(got) != 2 || got[0].Service != "hello" || got[0].Fields["traffic"] != "1=100" || got[0].Fields["by"] != "api" ||
		got[1].Service != "other" {
		t.Fatalf("events of the fixture: %+v", got)
	}
	const path = "/v1/services/hello/traffic"
	cases := []struct {
		name, method, path, body string
		header                   map[string]string
		status                   int
		fields                   map[string]string
	}{
		{"put from the cli", "PUT", path, `{"weights":[{"version":1,"percent":90},{"version":2,"percent":10}],"tags":{"canary":2}}`,
			map[string]string{"Wisp-Client": "cli"}, 200, map[string]string{"by": "cli", "traffic": "1=90,2=10 canary=2"}},
		{"put from the dashboard", "PUT", path, `{"weights":[{"version":2,"percent":100}]}`,
			map[string]string{"Wisp-Client": "dashboard"}, 200, map[string]string{"by": "dashboard", "traffic": "2=100"}},
		{"unknown client is api", "PUT", path, `{"weights":[{"version":1,"percent":100}]}`,
			map[string]string{"Wisp-Client": "curl"}, 200, map[string]string{"by": "api", "traffic": "1=100"}},
		{"rollback", "POST", path + "/rollback", `{}`, map[string]string{"Wisp-Client": "cli"}, 201,
			map[string]string{"by": "rollback", "client": "cli", "traffic": "2=100"}},
		{"a second version shifts nothing", "POST", "/v1/services/hello/versions", `{"image":"hello:3"}`, nil, 201, nil},
		{"refused", "PUT", path, `{"weights":[{"version":1,"percent":50}]}`, nil, 422, nil},
		{"seed route", "POST", "/serviceDefinitions/hello/trafficWeights", `{"weights":[{"service_version_id":1,"weight":100}]}`, nil, 201,
			map[string]string{"by": "api", "traffic": "1=100"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := h.call(tc.method, tc.path, tc.body, tc.header)
			if resp.StatusCode != tc.status {
				t.Fatalf("%s %s: %d %s", tc.method, tc.path, resp.StatusCode, body)
			}
			got := s.take()
			if tc.fields == nil {
				if len(got) != 0 {
					t.Fatalf("events %+v, want none", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("events %+v, want one", got)
			}
			e := got[0]
			seed := strings.HasPrefix(tc.path, "/serviceDefinitions")
			if e.Event != core.EventTrafficChanged || e.Kind != core.LogPlatform || e.Service != "hello" || e.Fields["entry"] == "" ||
				!seed && !strings.Contains(string(body), `"id":`+e.Fields["entry"]+`,`) {
				t.Fatalf("event %+v for the answer %s", e, body)
			}
			for k, v := range tc.fields {
				if e.Fields[k] != v {
					t.Errorf("field %s = %q, want %q", k, e.Fields[k], v)
				}
			}
			if !strings.Contains(e.Message, tc.fields["traffic"]) {
				t.Errorf("message %q lacks the split", e.Message)
			}
		})
	}
}

// TestPatchLogPolicy: the log fields of the policy change with PATCH and
// read back; the others stay.
func TestPatchLogPolicy(t *testing.T) {
	h := newHarness(t)
	h.fixture()
	resp, body := h.call("PATCH", "/v1/services/hello", `{"policy":{"request_logs":true,"log_max_bytes":2097152,"log_max_age":"1h"}}`, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("PATCH: %d %s", resp.StatusCode, body)
	}
	_, body = h.call("GET", "/v1/services/hello", "", nil)
	for _, want := range []string{`"request_logs":true`, `"log_max_bytes":2097152`, `"log_max_age":"1h0m0s"`, `"max_instances":10`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("service %s lacks %s", body, want)
		}
	}
	_, body = h.call("GET", "/v1/services/other", "", nil)
	for _, want := range []string{`"request_logs":false`, `"log_max_bytes":52428800`, `"log_max_age":"168h0m0s"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("a default service %s lacks %s", body, want)
		}
	}
}
