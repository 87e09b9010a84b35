package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// call sends a request with the test token and extra headers, and returns
// the response (body read) and its body.
func (h *harness) call(method, path, body string, header map[string]string) (*http.Response, []byte) {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(h.t.Context(), method, h.srv.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp, b
}

// entryETag checks that a traffic response carries the ETag of the entry
// in its body, and returns it.
func entryETag(t *testing.T, resp *http.Response, body []byte) string {
	t.Helper()
	var e struct {
		ID int64 `json:"id"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.ID == 0 {
		t.Fatalf("not a traffic entry: %s (%v)", body, err)
	}
	want := `"` + strconv.FormatInt(e.ID, 10) + `"`
	if got := resp.Header.Get("ETag"); got != want {
		t.Fatalf("ETag %q, want %q (the entry's ID)", got, want)
	}
	return want
}

func TestTrafficETagAndIfMatch(t *testing.T) {
	h := newHarness(t)
	h.fixture()
	const path = "/v1/services/hello/traffic"
	split := `{"weights":[{"version":1,"percent":50},{"version":2,"percent":50}]}`

	resp, body := h.call("GET", path, "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET traffic: %d %s", resp.StatusCode, body)
	}
	first := entryETag(t, resp, body)

	resp, body = h.call("PUT", path, split, map[string]string{"If-Match": first})
	if resp.StatusCode != 200 {
		t.Fatalf("PUT with the current ETag: %d %s", resp.StatusCode, body)
	}
	second := entryETag(t, resp, body)
	if second == first {
		t.Fatalf("a new entry kept the ETag %s", first)
	}

	// Stale: 412, and nothing changes.
	before := h.state()
	syncs := h.syncs.Load()
	for _, tc := range []struct{ method, path, body string }{
		{"PUT", path, `{"weights":[{"version":2,"percent":100}]}`},
		{"POST", path + "/rollback", ``},
	} {
		resp, body = h.call(tc.method, tc.path, tc.body, map[string]string{"If-Match": first})
		var e apiError
		if err := json.Unmarshal(body, &e); err != nil || resp.StatusCode != 412 || e.Error.Code != "precondition_failed" ||
			!strings.Contains(e.Error.Message, "has changed") {
			t.Fatalf("%s %s with a stale ETag: %d %s, want 412 precondition_failed", tc.method, tc.path, resp.StatusCode, body)
		}
	}
	if after := h.state(); after != before {
		t.Fatalf("a stale If-Match changed state:\nbefore %s\nafter  %s", before, after)
	}
	if h.syncs.Load() != syncs {
		t.Fatal("a 412 waited for the router")
	}

	// "*" matches any current entry; rollback answers the new entry's ETag.
	resp, body = h.call("PUT", path, `{"weights":[{"version":2,"percent":100}]}`, map[string]string{"If-Match": "*"})
	if resp.StatusCode != 200 {
		t.Fatalf("PUT with If-Match *: %d %s", resp.StatusCode, body)
	}
	third := entryETag(t, resp, body)
	resp, body = h.call("POST", path+"/rollback", "", map[string]string{"If-Match": third})
	if resp.StatusCode != 201 {
		t.Fatalf("rollback with the current ETag: %d %s", resp.StatusCode, body)
	}
	if rb := entryETag(t, resp, body); rb == third {
		t.Fatal("rollback kept the ETag")
	}
	// Without If-Match, as before.
	if resp, body = h.call("PUT", path, split, nil); resp.StatusCode != 200 {
		t.Fatalf("PUT without If-Match: %d %s", resp.StatusCode, body)
	}
	entryETag(t, resp, body)
}

func TestIfMatchErrors(t *testing.T) {
	h := newHarness(t)
	h.fixture()
	h.must(201, "POST", "/v1/services", `{"name":"empty"}`)
	split := `{"weights":[{"version":1,"percent":100}]}`
	cases := []struct {
		name, method, path, body, ifMatch string
		status                            int
		code, field, msg                  string
	}{
		{"unquoted", "PUT", "/v1/services/hello/traffic", split, `1`, 400, "bad_request", "If-Match", `must be "*" or one ETag`},
		{"not a number", "PUT", "/v1/services/hello/traffic", split, `"abc"`, 400, "bad_request", "If-Match", `"\"abc\""`},
		{"empty tag", "PUT", "/v1/services/hello/traffic", split, `""`, 400, "bad_request", "If-Match", "one ETag"},
		{"zero", "PUT", "/v1/services/hello/traffic", split, `"0"`, 400, "bad_request", "If-Match", "one ETag"},
		{"two tags", "PUT", "/v1/services/hello/traffic", split, `"1", "2"`, 400, "bad_request", "If-Match", "one ETag"},
		{"rollback, malformed", "POST", "/v1/services/hello/traffic/rollback", ``, `abc`, 400, "bad_request", "If-Match", "one ETag"},
		{"malformed header before a bad body", "PUT", "/v1/services/hello/traffic", `{"weights":`, `x`, 400, "bad_request", "If-Match", "one ETag"},
		{"weak tag never matches", "PUT", "/v1/services/hello/traffic", split, `W/"1"`, 412, "precondition_failed", "", "weak ETag"},
		{"any entry of a service without traffic", "PUT", "/v1/services/empty/traffic", split, `*`, 412, "precondition_failed", "", "no traffic entry yet"},
		{"an entry of another service", "PUT", "/v1/services/other/traffic", split, `"1"`, 412, "precondition_failed", "", "the current entry is"},
		{"missing service", "PUT", "/v1/services/nope/traffic", split, `"1"`, 404, "not_found", "", `service "nope" not found`},
		{"rollback of a missing service", "POST", "/v1/services/nope/traffic/rollback", ``, `*`, 404, "not_found", "", `service "nope" not found`},
	}
	before := h.state()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := h.call(tc.method, tc.path, tc.body, map[string]string{"If-Match": tc.ifMatch})
			var e apiError
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("error body is not JSON: %s", body)
			}
			if resp.StatusCode != tc.status || e.Error.Code != tc.code || e.Error.Field != tc.field || !strings.Contains(e.Error.Message, tc.msg) {
				t.Fatalf("got %d %s, want %d %s field %q message containing %q", resp.StatusCode, body, tc.status, tc.code, tc.field, tc.msg)
			}
		})
	}
	if after := h.state(); after != before {
		t.Fatalf("failed conditional writes changed state:\nbefore %s\nafter  %s", before, after)
	}
}

// TestTrafficRules: rules go through PUT and come back from GET, the
// history and a rollback; a bad rule is a 400 that names its field and
// changes nothing; a version a rule targets cannot be deleted.
func TestTrafficRules(t *testing.T) {
	h := newHarness(t)
	h.fixture()
	const path = "/v1/services/hello/traffic"
	withRules := `{"weights":[{"version":1,"percent":100}],"tags":{"canary":2},"rules":[` +
		`{"match":[{"kind":"header","name":"X-Beta","op":"exact","value":"1"}],"version":2},` +
		`{"match":[{"kind":"source","op":"cidr","value":"10.0.0.0/8"},{"kind":"query","name":"q","op":"present"}],"tag":"canary"}]}`
	resp, body := h.call("PUT", path, withRules, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("PUT with rules: %d %s", resp.StatusCode, body)
	}
	id := entryETag(t, resp, body)
	type entry struct {
		Rules []struct {
			Match   []map[string]string `json:"match"`
			Version int                 `json:"version"`
			Tag     string              `json:"tag"`
		} `json:"rules"`
	}
	var got entry
	_, body = h.call("GET", path, "", nil)
	if err := json.Unmarshal(body, &got); err != nil || len(got.Rules) != 2 || got.Rules[0].Version != 2 ||
		got.Rules[1].Tag != "canary" || got.Rules[1].Match[0]["value"] != "10.0.0.0/8" {
		t.Fatalf("GET after PUT: %s", body)
	}

	before := h.state()
	// Invalid rules are 422 invalid, as every core rule is; a body that is
	// not a Traffic is 400 (the decoder names an unknown field without its
	// path).
	for _, tc := range []struct {
		name, rules, field, msg string
		status                  int
	}{
		{"unknown version", `[{"match":[{"kind":"header","name":"X","op":"present"}],"version":9}]`, "rules[0].version", "rule 1: service hello has no version 9", 422},
		{"unknown tag", `[{"match":[{"kind":"header","name":"X","op":"present"}],"tag":"beta"}]`, "rules[0].tag", `tag \"beta\" is not one of this split's tags`, 422},
		{"bad regex", `[{"match":[{"kind":"header","name":"X","op":"regex","value":"(a"}],"version":2}]`, "rules[0].match[0].value", "does not compile", 422},
		{"empty header name", `[{"match":[{"kind":"header","name":"","op":"exact","value":"1"}],"version":2}]`, "rules[0].match[0].name", "the header name is empty", 422},
		{"bad CIDR", `[{"match":[{"kind":"source","op":"cidr","value":"10.0.0.0"}],"version":2}]`, "rules[0].match[0].value", "not an address range", 422},
		{"unknown field", `[{"match":[],"version":2,"weight":1}]`, "weight", "unknown field", 400},
		{"too many", "[" + strings.TrimSuffix(strings.Repeat(`{"match":[{"kind":"header","name":"X","op":"present"}],"version":2},`, 51), ",") + "]", "rules", "51 rules; the limit is 50", 422},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := h.call("PUT", path, `{"weights":[{"version":1,"percent":100}],"rules":`+tc.rules+`}`, nil)
			var e apiError
			if err := json.Unmarshal(body, &e); err != nil || resp.StatusCode != tc.status || !strings.Contains(string(body), tc.msg) ||
				!strings.Contains(string(body), `"field":"`+tc.field+`"`) {
				t.Fatalf("got %d %s, want %d with field %s and %q", resp.StatusCode, body, tc.status, tc.field, tc.msg)
			}
		})
	}
	if after := h.state(); after != before {
		t.Fatalf("a refused split changed state:\nbefore %s\nafter  %s", before, after)
	}

	resp, body = h.call("DELETE", "/v1/services/hello/versions/2", "", nil)
	if resp.StatusCode != 409 || !strings.Contains(string(body), "tagged canary") {
		t.Fatalf("delete a version a rule and a tag target: %d %s, want 409", resp.StatusCode, body)
	}
	h.must(200, "PUT", path, `{"weights":[{"version":1,"percent":100}],"rules":[{"match":[{"kind":"header","name":"X","op":"present"}],"version":2}]}`)
	resp, body = h.call("DELETE", "/v1/services/hello/versions/2", "", nil)
	if resp.StatusCode != 409 || !strings.Contains(string(body), "target of request rule 1") {
		t.Fatalf("delete a version a rule targets: %d %s, want 409", resp.StatusCode, body)
	}

	h.must(200, "PUT", path, `{"weights":[{"version":1,"percent":100}]}`)
	_, body = h.call("GET", path, "", nil)
	if strings.Contains(string(body), `"rules"`) {
		t.Fatalf("a split without rules carries rules: %s", body)
	}
	resp, body = h.call("POST", path+"/rollback", `{"to_entry":`+strings.Trim(id, `"`)+`}`, nil)
	got = entry{}
	if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != 201 || len(got.Rules) != 2 {
		t.Fatalf("rollback to the entry with rules: %d %s", resp.StatusCode, body)
	}
	_, body = h.call("GET", path+"/history", "", nil)
	if n := strings.Count(string(body), `"rules"`); n != 3 {
		t.Fatalf("history: %d entries with rules, want 3: %s", n, body)
	}
}
