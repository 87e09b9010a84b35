package cli_test

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestAsyncCommandsAgainstDaemon runs the async commands against a real
// daemon (fake runtime): invoke --async --wait, calls, triggers with an
// event, and schedules.
func TestAsyncCommandsAgainstDaemon(t *testing.T) {
	e := newEnv(t)
	e.ok("service", "create", "hello")
	e.ok("version", "create", "hello", "--image", "hello:1", "--env", "GREETING=Async")
	router := "http://" + e.router

	out := e.ok("invoke", "hello", "/job", "--router", router, "--async", "--wait", "--timeout", "30s")
	if !strings.Contains(out, "Async") {
		t.Fatalf("invoke --async --wait printed %q, want the function's answer", out)
	}
	out = e.ok("invoke", "hello", "/job2", "--router", router, "--async")
	id := regexp.MustCompile(`\b[0-9a-v]{26}\b`).FindString(out)
	if id == "" || !strings.Contains(out, "wisp calls get") {
		t.Fatalf("invoke --async printed %q, want a call ID and how to read it", out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(e.ok("calls", "get", id), "succeeded") {
		if time.Now().After(deadline) {
			t.Fatalf("call %s not succeeded in 20s: %s", id, e.ok("calls", "get", id))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out := e.ok("calls", "list", "hello"); !strings.Contains(out, id) {
		t.Fatalf("calls list: %s", out)
	}
	if code, _, errOut := e.run("invoke", "nope", "--router", router, "--async"); code == 0 || !strings.Contains(errOut, "nope") {
		t.Fatalf("invoke of a missing service: exit %d, %s", code, errOut)
	}

	e.ok("trigger", "create", "orders", "--service", "hello", "--subject", "orders.>", "--filter", "type^=com.example.")
	e.ok("event", "publish", "orders.created", "--type", "com.example.created", "--source", "/shop", "--id", "e-1", "-d", `{"n":1}`)
	deadline = time.Now().Add(20 * time.Second)
	for !strings.Contains(e.ok("trigger", "get", "orders"), "succeeded") {
		if time.Now().After(deadline) {
			t.Fatalf("no delivery in 20s: %s", e.ok("trigger", "get", "orders"))
		}
		time.Sleep(50 * time.Millisecond)
	}

	e.ok("schedule", "create", "nightly", "--service", "hello", "--cron", "30 2 * * *", "--tz", "Europe/Paris", "--suspend")
	if out := e.ok("schedule", "next", "nightly"); strings.Count(out, "\n") < 5 {
		t.Fatalf("schedule next: %s", out)
	}
	if out := e.ok("schedule", "run", "nightly"); !regexp.MustCompile(`[0-9a-v]{26}`).MatchString(out) {
		t.Fatalf("schedule run: %s", out)
	}
	e.ok("schedule", "resume", "nightly")
	if out := e.ok("schedule", "list"); !strings.Contains(out, "nightly") {
		t.Fatalf("schedule list: %s", out)
	}
	if code, _, errOut := e.run("schedule", "create", "bad", "--service", "hello", "--cron", "61 * * * *"); code == 0 || !strings.Contains(errOut, "minute") {
		t.Fatalf("bad cron: exit %d, %s", code, errOut)
	}
}
