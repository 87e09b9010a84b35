package daemon_test

import (
	"net"
	"strconv"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/wisp-run/wisp/internal/config"
)

// natsServer runs a NATS server with JetStream on a free loopback port,
// as an operator's cluster would be, and returns its URL.
func natsServer(t *testing.T) string {
	t.Helper()
	srv, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: natsserver.RANDOM_PORT, JetStream: true,
		StoreDir: t.TempDir(), NoSigs: true, NoLog: true, Authorization: "cluster-token"})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(srv.Shutdown)
	addr := srv.Addr().(*net.TCPAddr)
	return "nats://127.0.0.1:" + strconv.Itoa(addr.Port)
}

// TestAsyncSharedNATS: two Wisps on one NATS (--nats-url) share the calls
// of a service, and a schedule fires once per due time, not once per
// replica.
func TestAsyncSharedNATS(t *testing.T) {
	t.Parallel()
	url := natsServer(t)
	edit := func(c *config.Config) { c.NATSURL, c.NATSToken = url, "cluster-token" }
	fnA, fnB := newRecorder(), newRecorder()
	_, a, _ := asyncService(t, t.TempDir(), fnA, edit)
	_, b, _ := asyncService(t, t.TempDir(), fnB, edit)

	// A call submitted to either replica is done once, by one of them.
	ids := map[string]bool{}
	for i := range 40 {
		env := a
		if i%2 == 1 {
			env = b
		}
		ids[env.submit("/job", nil, "")] = true
	}
	for id := range ids {
		if c := a.wait(id); c.State != "succeeded" || len(c.Attempts) != 1 {
			t.Fatalf("call %s: %s with %d attempts", id, c.State, len(c.Attempts))
		}
	}
	count := func(f *recorder, path string) int {
		f.mu.Lock()
		defer f.mu.Unlock()
		n := 0
		for _, r := range f.reqs {
			if r.path == path {
				n++
			}
		}
		return n
	}
	if n := count(fnA, "/job") + count(fnB, "/job"); n != 40 {
		t.Fatalf("the functions served %d calls, want 40", n)
	}

	// The schedule is made on one replica; both run the scheduler.
	if code, body := a.admin2("POST", "/v1/schedules", `{"name":"tick","service":"fn","cron":"@every 1s","path":"/tick"}`, nil); code != 201 {
		t.Fatalf("create schedule: %d %s", code, body)
	}
	time.Sleep(6500 * time.Millisecond)
	if code, _ := a.admin2("PATCH", "/v1/schedules/tick", `{"suspend":true}`, nil); code != 200 {
		t.Fatal("suspend")
	}
	time.Sleep(500 * time.Millisecond)
	seen := map[string]int{}
	for _, f := range []*recorder{fnA, fnB} {
		f.mu.Lock()
		for _, r := range f.reqs {
			if r.path == "/tick" {
				seen[r.header.Get("Wisp-Scheduled-For")]++
			}
		}
		f.mu.Unlock()
	}
	if len(seen) < 5 || len(seen) > 8 {
		t.Errorf("%d due times fired in 6.5 s of @every 1s, want 5 to 8", len(seen))
	}
	for due, n := range seen {
		if n != 1 {
			t.Errorf("due time %s fired %d times across the two replicas, want once", due, n)
		}
	}
}
