package api_test

import (
	"net/http"
	"testing"
)

// FuzzRequestDecoding sends arbitrary bodies to every route that reads one:
// the answer is always a success or a 4xx, never a 500 or a panic.
func FuzzRequestDecoding(f *testing.F) {
	seeds := []string{
		`{"name":"hello"}`, `{"image":"hello:1","port":8080,"env":["A=1"]}`,
		`{"weights":[{"version":1,"percent":100}],"tags":{"canary":1}}`, `{"policy":{"idle_timeout":"2s"}}`,
		`{"memory_limit":"256Mi","timeout":1e300}`, `{"to_entry":1}`, `{"image_name":"x","image_tag":"1"}`,
		`{"weights":[{"service_version_id":1,"weight":100}]}`, `nul`, `{"policy":{"pause_after":-1}}`,
	}
	for _, s := range seeds {
		for i := range 7 {
			f.Add(i, s)
		}
	}
	routes := []struct{ method, path string }{
		{"POST", "/v1/services"},
		{"PATCH", "/v1/services/hello"},
		{"POST", "/v1/services/hello/versions"},
		{"PUT", "/v1/services/hello/traffic"},
		{"POST", "/v1/services/hello/traffic/rollback"},
		{"POST", "/serviceDefinitions/hello/versions"},
		{"POST", "/serviceDefinitions/hello/trafficWeights"},
	}
	h := newHarness(f)
	h.fixture()
	f.Fuzz(func(t *testing.T, route int, body string) {
		r := routes[(route%len(routes)+len(routes))%len(routes)]
		status, resp := h.send(t, r.method, r.path, body, "Bearer "+token)
		if status >= 500 || status == 0 {
			t.Fatalf("%s %s %q: status %d: %s", r.method, r.path, body, status, resp)
		}
		if status >= 400 && status != http.StatusNotFound && len(resp) == 0 {
			t.Fatalf("%s %s %q: %d without a message", r.method, r.path, body, status)
		}
	})
}
