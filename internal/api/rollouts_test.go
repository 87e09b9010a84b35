package api_test

import (
	"strings"
	"testing"
)

func TestRolloutAPI(t *testing.T) {
	h := newHarness(t)
	h.fixture()
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		field, msg               string
	}{
		{"no rollout yet", "GET", "/v1/services/hello/rollout", "", 404, "", "has no rollout"},
		{"pause without rollout", "POST", "/v1/services/hello/rollout/pause", "", 404, "", "has no rollout"},
		{"missing service", "POST", "/v1/services/nope/rollout", `{"to":2}`, 404, "", "not found"},
		{"no body", "POST", "/v1/services/hello/rollout", ``, 400, "", ""},
		{"unknown field", "POST", "/v1/services/hello/rollout", `{"to":2,"stepz":[100]}`, 400, "stepz", "unknown field"},
		{"steps down", "POST", "/v1/services/hello/rollout", `{"to":2,"steps":[50,25,100]}`, 422, "steps", "increase strictly"},
		{"steps short of 100", "POST", "/v1/services/hello/rollout", `{"to":2,"steps":[5,50]}`, 422, "steps", "last step must be 100"},
		{"interval too short", "POST", "/v1/services/hello/rollout", `{"to":2,"interval":"10ms"}`, 422, "interval", "between 1s and 1h0m0s"},
		{"bad interval", "POST", "/v1/services/hello/rollout", `{"to":2,"interval":"soon"}`, 400, "", "is not a duration"},
		{"error rate", "POST", "/v1/services/hello/rollout", `{"to":2,"max_error_rate":150}`, 422, "max_error_rate", "from 0 to 100"},
		{"ratio", "POST", "/v1/services/hello/rollout", `{"to":2,"max_p99_ratio":0.5}`, 422, "max_p99_ratio", "between 1 and 100"},
		{"min requests", "POST", "/v1/services/hello/rollout", `{"to":2,"min_requests":-3}`, 422, "min_requests", "between 1 and"},
		{"unknown version", "POST", "/v1/services/hello/rollout", `{"to":9}`, 422, "to", "has no version 9"},
		{"version at 100%", "POST", "/v1/services/hello/rollout", `{"to":1}`, 409, "", "has 100% of the traffic already"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, b := h.do(tc.method, tc.path, tc.body)
			if status != tc.status || !strings.Contains(string(b), tc.msg) || tc.field != "" && !strings.Contains(string(b), `"field":"`+tc.field+`"`) {
				t.Errorf("%s %s: %d %s; want %d with field %q and %q", tc.method, tc.path, status, b, tc.status, tc.field, tc.msg)
			}
		})
	}
	ro := h.must(201, "POST", "/v1/services/hello/rollout", `{"to":2,"steps":[10,100],"interval":"1s","min_requests":20}`)
	if ro["state"] != "running" || ro["percent"] != float64(10) || ro["step"] != float64(1) {
		t.Errorf("started rollout = %v", ro)
	}
	tr := h.must(200, "GET", "/v1/services/hello/traffic", "")
	if !strings.Contains(tr["message"].(string), "step 1/2, 10% to version 2") {
		t.Errorf("traffic after start: %v", tr)
	}
	status, b := h.do("POST", "/v1/services/hello/rollout", `{"to":2}`)
	if status != 409 || !strings.Contains(string(b), "has rollout 1 running") {
		t.Errorf("second rollout: %d %s; want 409 naming rollout 1", status, b)
	}
	h.must(200, "POST", "/v1/services/hello/rollout/pause", "")
	if status, b := h.do("POST", "/v1/services/hello/rollout/pause", ""); status != 409 || !strings.Contains(string(b), "paused already") {
		t.Errorf("pause twice: %d %s", status, b)
	}
	h.must(200, "POST", "/v1/services/hello/rollout/resume", "")
	got := h.must(200, "POST", "/v1/services/hello/rollout/abort", "")
	if got["state"] != "aborted" {
		t.Errorf("after abort: %v", got)
	}
	tr = h.must(200, "GET", "/v1/services/hello/traffic", "")
	if w := tr["weights"].([]any); len(w) != 1 || w[0].(map[string]any)["version"] != float64(1) || !strings.Contains(tr["message"].(string), "aborted by api") {
		t.Errorf("traffic after abort: %v", tr)
	}
	if status, b := h.do("POST", "/v1/services/hello/rollout/promote", ""); status != 409 || !strings.Contains(string(b), "aborted") {
		t.Errorf("promote after abort: %d %s; want 409", status, b)
	}
	h.must(201, "POST", "/v1/services/hello/rollout", `{"to":2}`)
	if got := h.must(200, "POST", "/v1/services/hello/rollout/promote", ""); got["state"] != "succeeded" {
		t.Errorf("after promote: %v", got)
	}
	tr = h.must(200, "GET", "/v1/services/hello/traffic", "")
	if w := tr["weights"].([]any); len(w) != 1 || w[0].(map[string]any)["version"] != float64(2) {
		t.Errorf("traffic after promote: %v", tr)
	}
}
