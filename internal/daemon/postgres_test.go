package daemon_test

import (
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/wisp-run/wisp/internal/apiclient"
	"github.com/wisp-run/wisp/internal/config"
	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/daemon"
	"github.com/wisp-run/wisp/internal/store/postgres"
	"github.com/wisp-run/wisp/internal/store/postgres/pgtest"
)

// pg is the package's PostgreSQL server (a throwaway one, or the one
// WISP_TEST_POSTGRES_URL names), started by the first test that needs it.
var pg pgtest.Server

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

// TestPostgresStore: a daemon started with --store postgres://… keeps its
// state there; a write made by another process on the same database (a
// second replica) reaches this daemon's router through LISTEN/NOTIFY and
// the change feed; the state survives a restart.
func TestPostgresStore(t *testing.T) {
	ctx := t.Context()
	url := pg.Database(t)
	dataDir := t.TempDir()
	useStore := func(c *config.Config) { c.Store = url }
	d, stop := runDaemon(t, dataDir, useStore, daemon.Options{Runtime: newFake()})
	c := apiclient.New(d.AdminAddr().String(), d.Token())
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Store != "postgres" {
		t.Fatalf("/v1/info says store %q, want postgres", info.Store)
	}

	other, err := postgres.Open(ctx, postgres.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	get := func() (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+d.RouterAddr().String()+"/", nil)
		req.Host = "elsewhere.localhost"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if _, err := other.CreateService(ctx, core.Service{Name: "elsewhere", Policy: core.DefaultPolicy()}); err != nil {
		t.Fatal(err)
	}
	if _, err := other.CreateVersion(ctx, core.Version{Service: "elsewhere", ImageID: "sha256:hello1",
		VersionSpec: core.VersionSpec{Image: "hello:1", Env: []string{"GREETING=one"}}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for {
		code, body := get()
		if code == 200 && body == "Hello, one!\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("another process's write did not reach the router within 1s: %d %q", code, body)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Through the API: live when the call returns (read-your-writes), and
	// visible to the other process.
	if _, err := c.CreateVersion(ctx, "elsewhere", core.VersionSpec{Image: "hello:1", Env: []string{"GREETING=two"}}); err != nil {
		t.Fatal(err)
	}
	e, err := c.SetTraffic(ctx, "elsewhere", core.Traffic{Weights: []core.Weight{{Version: 2, Percent: 100}}})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := get(); code != 200 || body != "Hello, two!\n" {
		t.Fatalf("after SetTraffic returned: %d %q, want v2's answer", code, body)
	}
	if cur, err := other.GetTraffic(ctx, "elsewhere"); err != nil || cur.ID != e.ID {
		t.Fatalf("the other process reads traffic %+v, %v; want entry %d", cur, err, e.ID)
	}
	services, _ := c.ListServices(ctx)
	history, _ := c.TrafficHistory(ctx, "elsewhere")
	stop()

	d2, _ := runDaemon(t, dataDir, useStore, daemon.Options{Runtime: newFake()})
	c2 := apiclient.New(d2.AdminAddr().String(), d2.Token())
	services2, err := c2.ListServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	history2, _ := c2.TrafficHistory(ctx, "elsewhere")
	opt := cmpopts.EquateApproxTime(time.Millisecond)
	if diff := cmp.Diff(services, services2, opt, cmpopts.IgnoreFields(core.Service{}, "URL")); diff != "" {
		t.Errorf("services after restart (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(history, history2, opt); diff != "" || len(history2) != 2 {
		t.Errorf("history after restart: %d entries (-before +after):\n%s", len(history2), diff)
	}
}
