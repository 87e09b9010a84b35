package daemon_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wisp-run/wisp/internal/apiclient"
	"github.com/wisp-run/wisp/internal/config"
	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/daemon"
	"github.com/wisp-run/wisp/internal/runtime"
	"github.com/wisp-run/wisp/internal/runtime/fake"
)

// recorder is a function that keeps every request it gets.
type recorder struct {
	mu   sync.Mutex
	reqs []recorded
	got  chan recorded
	// hold makes each request take this long.
	hold time.Duration
	// running counts requests being served; overlap records the most at once.
	running, overlap int
}

type recorded struct {
	at     time.Time
	path   string
	header http.Header
	body   string
}

func newRecorder() *recorder { return &recorder{got: make(chan recorded, 1000)} }

func (f *recorder) handler(runtime.InstanceSpec) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rec := recorded{at: time.Now(), path: r.URL.Path, header: r.Header.Clone(), body: string(b)}
		f.mu.Lock()
		f.reqs = append(f.reqs, rec)
		f.running++
		f.overlap = max(f.overlap, f.running)
		hold := f.hold
		f.mu.Unlock()
		f.got <- rec
		time.Sleep(hold)
		f.mu.Lock()
		f.running--
		f.mu.Unlock()
	})
}

func (f *recorder) next(t *testing.T, within time.Duration) recorded {
	t.Helper()
	select {
	case r := <-f.got:
		return r
	case <-time.After(within):
		t.Fatalf("the function got no request within %s", within)
		return recorded{}
	}
}

func (f *recorder) none(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case r := <-f.got:
		t.Fatalf("unexpected request %s %v", r.path, r.header)
	case <-time.After(within):
	}
}

// asyncService starts a daemon whose service fn runs fn, with edit applied
// to its config.
func asyncService(t *testing.T, dataDir string, fn *recorder, edit func(*config.Config)) (*daemon.Daemon, asyncEnv, func()) {
	t.Helper()
	rt := fake.New(fake.Config{Images: map[string]string{"fn:1": "sha256:fn1"}, Handler: fn.handler})
	d, stop := runDaemon(t, dataDir, edit, daemon.Options{Out: io.Discard, Runtime: rt})
	env := asyncEnv{t: t, service: "fn", router: "http://" + d.RouterAddr().String(), admin: "http://" + d.AdminAddr().String(), token: d.Token()}
	c := apiclient.New(d.AdminAddr().String(), d.Token())
	if _, err := c.CreateService(t.Context(), "fn", core.PolicyPatch{}); err != nil && !strings.Contains(err.Error(), "exists") {
		t.Fatal(err)
	}
	if vs, _ := c.ListVersions(t.Context(), "fn"); len(vs) == 0 {
		if _, err := c.CreateVersion(t.Context(), "fn", core.VersionSpec{Image: "fn:1"}); err != nil {
			t.Fatal(err)
		}
	}
	return d, env, stop
}

func (e asyncEnv) admin2(method, path, body string, h http.Header) (int, string) {
	e.t.Helper()
	if h == nil {
		h = http.Header{}
	}
	h.Set("Authorization", "Bearer "+e.token)
	if h.Get("Content-Type") == "" && body != "" {
		h.Set("Content-Type", "application/json")
	}
	res, b := e.do(method, e.admin+path, h, body)
	return res.StatusCode, b
}

func TestTriggers(t *testing.T) {
	t.Parallel()
	fn := newRecorder()
	d, env, _ := asyncService(t, t.TempDir(), fn, func(c *config.Config) {
		c.NATSListen, c.NATSToken = "127.0.0.1:0", "s3cret"
	})
	if code, b := env.admin2("POST", "/v1/triggers", `{"name":"orders","service":"fn","subject":"orders.>","path":"/orders","filters":["type^=com.example."]}`, nil); code != 201 {
		t.Fatalf("create trigger: %d %s", code, b)
	}

	t.Run("bad triggers are refused", func(t *testing.T) {
		for _, tc := range []struct{ body, want string }{
			{`{"name":"x","service":"nope","subject":"a.b"}`, `nope`},
			{`{"name":"x","service":"fn","subject":">"}`, "starts with a wildcard"},
			{`{"name":"x","service":"fn","subject":"wisp.work.fn"}`, "reserved"},
			{`{"name":"x","service":"fn","subject":"a.b","filters":["colour=red"]}`, "colour"},
			{`{"name":"Bad_Name","service":"fn","subject":"a.b"}`, "name"},
			{`{"name":"orders","service":"fn","subject":"a.b"}`, "exists"},
		} {
			code, b := env.admin2("POST", "/v1/triggers", tc.body, nil)
			if code < 400 || code >= 500 || !strings.Contains(b, tc.want) {
				t.Errorf("create %s: got %d %s, want a 4xx with %q", tc.body, code, b, tc.want)
			}
		}
	})

	t.Run("an event published on NATS reaches the service as a binary CloudEvent", func(t *testing.T) {
		if _, err := nats.Connect(d.NATSURL()); err == nil {
			t.Fatal("the NATS port took a client without the token")
		}
		nc, err := nats.Connect(d.NATSURL(), nats.Token("s3cret"))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		m := nats.NewMsg("orders.created.eu")
		m.Header.Set("ce-specversion", "1.0")
		m.Header.Set("ce-id", "o-1")
		m.Header.Set("ce-source", "/shop")
		m.Header.Set("ce-type", "com.example.order.created")
		m.Header.Set("ce-subject", "order 1 ünï")
		m.Header.Set("Content-Type", "application/json")
		m.Data = []byte(`{"order":1}`)
		// The stream that keeps events may take a moment to cover the
		// trigger's subject after creation: publish until stored.
		js, _ := nc.JetStream()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := js.PublishMsg(m); err == nil {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("publish: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		got := fn.next(t, 10*time.Second)
		if got.path != "/orders" || got.header.Get("Ce-Id") != "o-1" || got.header.Get("Ce-Source") != "/shop" ||
			got.header.Get("Ce-Type") != "com.example.order.created" || got.header.Get("Ce-Specversion") != "1.0" ||
			got.header.Get("Content-Type") != "application/json" || got.body != `{"order":1}` {
			t.Fatalf("delivered %s %v %s", got.path, got.header, got.body)
		}
		if s := got.header.Get("Ce-Subject"); s != "order%201%20%C3%BCn%C3%AF" {
			t.Errorf("ce-subject %q, want it percent-encoded per the HTTP binding", s)
		}
		// A filtered-out type and a duplicate (same source and id) make no call.
		m.Header.Set("ce-type", "org.other.thing")
		m.Header.Set("ce-id", "o-2")
		if _, err := js.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
		m.Header.Set("ce-type", "com.example.order.created")
		m.Header.Set("ce-id", "o-1")
		if _, err := js.PublishMsg(m, nats.MsgId("another")); err != nil {
			t.Fatal(err)
		}
		fn.none(t, 700*time.Millisecond)
	})

	t.Run("a structured event over HTTP, on the API and on the router", func(t *testing.T) {
		ev := `{"specversion":"1.0","id":"p-1","source":"/pay","type":"com.example.paid","data":{"amount":3}}`
		code, b := env.admin2("POST", "/v1/events?subject=orders.paid", ev, http.Header{"Content-Type": {"application/cloudevents+json"}})
		if code != 202 {
			t.Fatalf("POST /v1/events: %d %s", code, b)
		}
		got := fn.next(t, 10*time.Second)
		if got.header.Get("Ce-Id") != "p-1" || got.header.Get("Ce-Type") != "com.example.paid" || got.body != `{"amount":3}` {
			t.Fatalf("delivered %v %s", got.header, got.body)
		}
		res, b2 := env.do("POST", env.router+"/events/orders.refunded", http.Header{"Content-Type": {"application/cloudevents+json"}},
			`{"specversion":"1.0","id":"r-1","source":"/pay","type":"com.example.refunded","data":"x"}`)
		if res.StatusCode != 202 {
			t.Fatalf("router /events/: %d %s", res.StatusCode, b2)
		}
		if got := fn.next(t, 10*time.Second); got.header.Get("Ce-Id") != "r-1" {
			t.Fatalf("delivered %v", got.header)
		}
	})

	t.Run("bad events get a 400 naming the attribute", func(t *testing.T) {
		for _, tc := range []struct {
			h    http.Header
			body string
			want string
		}{
			{http.Header{"Content-Type": {"application/cloudevents+json"}}, `{"specversion":"1.0","id":"1","type":"t"}`, `"source"`},
			{http.Header{"Content-Type": {"application/cloudevents+json"}}, `{"specversion":"0.3","id":"1","type":"t","source":"/s"}`, `specversion`},
			{http.Header{"Ce-Specversion": {"1.0"}, "Ce-Id": {"1"}, "Ce-Source": {"/s"}}, `x`, `"type"`},
			{http.Header{"Ce-Specversion": {"1.0"}, "Ce-Id": {"1"}, "Ce-Source": {"/s"}, "Ce-Type": {"a%zzb"}}, `x`, `percent`},
			{http.Header{"Content-Type": {"text/plain"}}, `hello`, `CloudEvent`},
		} {
			code, b := env.admin2("POST", "/v1/events?subject=orders.x", tc.body, tc.h)
			if code != 400 || !strings.Contains(b, tc.want) {
				t.Errorf("event %v %s: got %d %s, want 400 with %q", tc.h, tc.body, code, b, tc.want)
			}
		}
		res, b := env.do("POST", env.router+"/events/orders.x", http.Header{"Content-Type": {"application/cloudevents+json"}}, `{"id":"1"}`)
		if res.StatusCode != 400 || !strings.Contains(b, "specversion") {
			t.Errorf("router: got %d %s, want 400 naming specversion", res.StatusCode, b)
		}
	})

	t.Run("the trigger shows its deliveries", func(t *testing.T) {
		// The function has seen the third event, but its call's record
		// may be written a moment after the answer: wait for it.
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			code, b := env.admin2("GET", "/v1/triggers/orders", "", nil)
			var tr core.Trigger
			if code == 200 && json.Unmarshal([]byte(b), &tr) == nil && len(tr.Deliveries) == 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("get trigger: %d %s, want 3 deliveries", code, b)
			}
		}
		if code, b := env.admin2("DELETE", "/v1/triggers/orders", "", nil); code != 204 {
			t.Fatalf("delete: %d %s", code, b)
		}
		if code, _ := env.admin2("GET", "/v1/triggers/orders", "", nil); code != 404 {
			t.Fatalf("get deleted trigger: %d, want 404", code)
		}
	})
}
