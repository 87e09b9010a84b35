package cli_test

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/core"
)

// TestLogs: an instance's output, captured by the daemon, through
// `wisp logs` (plain when not a terminal), --tail, -o json, and the errors.
func TestLogs(t *testing.T) {
	e := newEnv(t)
	e.ok("service", "create", "hello")
	e.ok("version", "create", "hello", "--image", "hello:1")
	for _, text := range []string{"first line", "second line"} {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+e.router+"/log?stream=stderr&text="+strings.ReplaceAll(text, " ", "+"), nil)
		req.Host = "hello.localhost"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	var out string
	deadline := time.Now().Add(10 * time.Second)
	for out = e.ok("logs", "hello"); !strings.Contains(out, "second line"); out = e.ok("logs", "hello") {
		if time.Now().After(deadline) {
			t.Fatalf("wisp logs never showed the second line:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	line := regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} v1 hello-v1-\S* \| first line$`)
	if !line.MatchString(out) || strings.Contains(out, "\033[") {
		t.Errorf("wisp logs, piped, want plain \"TIME v1 INSTANCE | first line\":\n%q", out)
	}
	if tail := e.ok("logs", "hello", "--tail", "1"); strings.Count(tail, "\n") != 1 || !strings.Contains(tail, "second line") {
		t.Errorf("--tail 1: %q", tail)
	}
	var ent core.LogEntry
	js := strings.Split(strings.TrimSpace(e.ok("logs", "hello", "--tail", "1", "-o", "json")), "\n")
	if len(js) != 1 || json.Unmarshal([]byte(js[0]), &ent) != nil || ent.Message != "second line" || ent.Stream != "stderr" || ent.Kind != core.LogApp {
		t.Errorf("-o json: %q", js)
	}
	if out := e.ok("logs", "hello", "--since", "1h", "--version", "2"); out != "" {
		t.Errorf("--version 2 (none): %q", out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"logs", "nope"}, `service "nope" not found`},
		{[]string{"logs", "hello", "--since", "yesterday"}, "--since"},
		{[]string{"logs", "hello", "--tail", "20000"}, "--tail"},
		{[]string{"logs"}, "accepts 1 arg"},
	} {
		if code, _, stderr := e.run(tc.args...); code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("wisp %v: exit %d, stderr %q, want an error naming %s", tc.args, code, stderr, tc.want)
		}
	}
}
