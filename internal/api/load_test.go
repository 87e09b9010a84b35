package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wisp-run/wisp/internal/api"
	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/store/sqlite"
)

// fakeReplicas records the reports it gets.
type fakeReplicas struct {
	leading bool
	got     []core.LoadReport
}

func (f *fakeReplicas) Leading() bool { return f.leading }

func (f *fakeReplicas) ReceiveLoad(r core.LoadReport) (core.LoadReply, error) {
	if !f.leading {
		return core.LoadReply{}, core.Conflictf("this replica does not lead")
	}
	f.got = append(f.got, r)
	return core.LoadReply{Leader: "a", Withheld: []string{"x"}}, nil
}

// blockingSyncer fails the test if anything waits for the change feed.
type blockingSyncer struct{ t *testing.T }

func (b blockingSyncer) Sync(context.Context) error {
	b.t.Error("a load report waited for the change feed")
	return errors.New("no")
}

// TestLoadReports: POST /v1/internal/load hands a valid report to the
// replicas and answers the reply, without waiting for the change feed;
// bad input is a 4xx naming the problem, never a 500; a replica that does
// not lead answers 409, and GET /v1/info says whether it leads.
func TestLoadReports(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "wisp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	rep := &fakeReplicas{leading: true}
	a, err := api.New(api.Config{Token: token}, st, slog.New(slog.DiscardHandler),
		api.WithReplicas(rep), api.WithSyncer(blockingSyncer{t}), api.WithInfo(core.ServerInfo{Replica: "a"}))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	defer srv.Close()
	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	status, body := do("POST", "/v1/internal/load", `{"replica":"b","versions":[{"version_id":3,"in_flight":2,"waiting":1,"requests":9}],"instances":[{"id":"x","in_flight":2,"idle_ms":0}]}`)
	var reply core.LoadReply
	if status != 200 || json.Unmarshal([]byte(body), &reply) != nil || reply.Leader != "a" || len(reply.Withheld) != 1 {
		t.Fatalf("a valid report: %d %s", status, body)
	}
	if len(rep.got) != 1 || rep.got[0].Versions[0].Waiting != 1 || rep.got[0].Instances[0].InFlight != 2 {
		t.Fatalf("the replicas got %+v", rep.got)
	}

	bad := []struct {
		name, body string
		status     int
		says       string
	}{
		{"malformed JSON", `{"replica":"b",`, 400, "malformed JSON"},
		{"not an object", `[1,2]`, 400, ""},
		{"empty body", ``, 400, "empty"},
		{"unknown field", `{"replica":"b","cpu":3}`, 400, "cpu"},
		{"wrong type", `{"replica":"b","versions":[{"version_id":"three"}]}`, 400, "version_id"},
		{"trailing data", `{"replica":"b"} {}`, 400, "unexpected data"},
		{"no replica", `{"versions":[]}`, 422, "replica"},
		{"version id 0", `{"replica":"b","versions":[{"version_id":0}]}`, 422, "version_id"},
		{"negative waiting", `{"replica":"b","versions":[{"version_id":1,"waiting":-4}]}`, 422, "negative"},
		{"negative requests", `{"replica":"b","versions":[{"version_id":1,"requests":-1}]}`, 400, "requests"},
		{"huge version id", `{"replica":"b","versions":[{"version_id":99999999999999999999999}]}`, 400, "version_id"},
		{"bad instance id", `{"replica":"b","instances":[{"id":"a/b"}]}`, 422, "instance ID"},
		{"too large", `{"replica":"` + strings.Repeat("r", 9<<20) + `"}`, 413, "larger"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			status, body := do("POST", "/v1/internal/load", tc.body)
			if status != tc.status || !strings.Contains(body, tc.says) {
				t.Fatalf("got %d %s, want %d saying %q", status, body, tc.status, tc.says)
			}
		})
	}
	if len(rep.got) != 1 {
		t.Fatalf("bad reports reached the replicas: %+v", rep.got[1:])
	}

	var info core.ServerInfo
	if _, body := do("GET", "/v1/info", ""); json.Unmarshal([]byte(body), &info) != nil || !info.Leader || info.Replica != "a" {
		t.Fatalf("info of the leader: %s", body)
	}
	rep.leading = false
	if status, body := do("POST", "/v1/internal/load", `{"replica":"b"}`); status != 409 || !strings.Contains(body, "does not lead") {
		t.Fatalf("a report to a follower: %d %s, want 409", status, body)
	}
	if _, body := do("GET", "/v1/info", ""); json.Unmarshal([]byte(body), &info) != nil || info.Leader {
		t.Fatalf("info of a follower: %s", body)
	}
}
