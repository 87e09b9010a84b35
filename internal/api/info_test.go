package api_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wisp-run/wisp/internal/api"
	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/store/sqlite"
)

// TestInfo: GET /v1/info answers what the daemon passed, and needs the token.
func TestInfo(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "wisp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	want := core.ServerInfo{Version: "v1.2.3", Commit: "0123456789ab", Go: "go1.26", Runtime: "docker", Store: "sqlite"}
	a, err := api.New(api.Config{Token: token}, st, slog.New(slog.DiscardHandler), api.WithInfo(want))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	defer srv.Close()
	get := func(auth string) (*http.Response, []byte) {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/v1/info", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, b := get("Bearer " + token)
	var got core.ServerInfo
	if resp.StatusCode != 200 || json.Unmarshal(b, &got) != nil {
		t.Fatalf("GET /v1/info: %d %s", resp.StatusCode, b)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("info (-want +got):\n%s", diff)
	}
	if resp, _ := get(""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without a token: %d, want 401", resp.StatusCode)
	}
}
