package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/wisp-run/wisp/internal/api"
	"github.com/wisp-run/wisp/internal/core"
)

// fakeLogs serves entries; a follow then gets what is sent on more.
type fakeLogs struct {
	mu      sync.Mutex
	entries []core.LogEntry
	last    core.LogQuery
	more    chan core.LogEntry
}

func (f *fakeLogs) Query(ctx context.Context, q core.LogQuery, fn func(core.LogEntry) error) error {
	f.mu.Lock()
	f.last = q
	es := append([]core.LogEntry(nil), f.entries...)
	f.mu.Unlock()
	for _, e := range es {
		if q.Matches(e) {
			if err := fn(e); err != nil {
				return err
			}
		}
	}
	for q.Follow {
		select {
		case <-ctx.Done():
			return nil
		case e := <-f.more:
			if err := fn(e); err != nil {
				return err
			}
		}
	}
	return nil
}

func (f *fakeLogs) query() core.LogQuery {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

func TestServiceLogsFilters(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	fl := &fakeLogs{entries: []core.LogEntry{
		{Seq: 1, Time: t0, Kind: core.LogApp, Service: "hello", Version: 1, Message: "one"},
		{Seq: 2, Time: t0, Kind: core.LogPlatform, Service: "hello", Version: 1, Event: core.EventInstanceReady, Message: "ready"},
	}}
	h := newHarness(t, api.WithLogs(fl))
	h.fixture()

	status, body := h.do("GET", "/v1/services/hello/logs?kind=app,request&kind=platform&version=1&instance=i1&tail=5&q=on&since=2026-01-01T00:00:00Z&until=1m", "")
	if status != 200 {
		t.Fatalf("GET logs: %d %s", status, body)
	}
	q := fl.query()
	want := core.LogQuery{Service: "hello", Version: 1, Instance: "i1", Tail: 5, Contains: "on",
		Kinds: []core.LogKind{core.LogApp, core.LogRequest, core.LogPlatform}, Since: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	if diff := cmp.Diff(want, q, cmpopts.IgnoreFields(core.LogQuery{}, "Until")); diff != "" {
		t.Errorf("query (-want +got):\n%s", diff)
	}
	if d := time.Since(q.Until); d < time.Minute || d > 2*time.Minute {
		t.Errorf("until=1m gave %v, want about a minute ago", q.Until)
	}

	status, body = h.do("GET", "/v1/services/hello/logs", "")
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	if status != 200 || len(lines) != 2 {
		t.Fatalf("GET logs: %d, %d lines %q, want 2 ndjson lines", status, len(lines), body)
	}
	var e core.LogEntry
	if err := json.Unmarshal([]byte(lines[1]), &e); err != nil || e.Event != core.EventInstanceReady || e.Seq != 2 {
		t.Errorf("second line %s: %v, want the ready event", lines[1], err)
	}

	bad := []struct{ query, field string }{
		{"tail=10001", "tail"}, {"tail=-1", "tail"}, {"tail=x", "tail"},
		{"since=yesterday", "since"}, {"until=2026-13-01", "until"},
		{"since=1m&until=2m", "until"},
		{"kind=app,debug", "kind"}, {"version=0", "version"}, {"version=v2", "version"},
		{"follow=maybe", "follow"},
	}
	for _, tc := range bad {
		t.Run(tc.query, func(t *testing.T) {
			status, body := h.do("GET", "/v1/services/hello/logs?"+tc.query, "")
			var eb struct {
				Error struct{ Field, Message string } `json:"error"`
			}
			_ = json.Unmarshal(body, &eb)
			if status != 400 || eb.Error.Field != tc.field {
				t.Errorf("got %d field %q (%s), want 400 naming %s", status, eb.Error.Field, body, tc.field)
			}
		})
	}
	if status, body := h.do("GET", "/v1/services/nope/logs", ""); status != 404 {
		t.Errorf("unknown service: %d %s, want 404", status, body)
	}
	if status, _ := h.doAuth("GET", "/v1/services/hello/logs", "", ""); status != 401 {
		t.Errorf("without a token: %d, want 401", status)
	}
}

func TestServiceLogsEventStream(t *testing.T) {
	fl := &fakeLogs{more: make(chan core.LogEntry), entries: []core.LogEntry{
		{Seq: 1, Kind: core.LogApp, Service: "hello", Message: "old"},
		{Seq: 2, Kind: core.LogApp, Service: "hello", Message: "newer"},
	}}
	h := newHarness(t, api.WithLogs(fl))
	h.fixture()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", h.srv.URL+"/v1/services/hello/logs?follow=true", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Last-Event-ID", "1")
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	r := bufio.NewReader(resp.Body)
	readEvent := func() []string {
		var ev []string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("read the stream: %v", err)
			}
			line = strings.TrimSuffix(line, "\n")
			if line == "" {
				return ev
			}
			ev = append(ev, line)
		}
	}
	if got := readEvent(); len(got) != 3 || got[0] != "id: 2" || got[1] != "event: log" || !strings.Contains(got[2], `"message":"newer"`) {
		t.Fatalf("first event %q, want entry 2 (Last-Event-ID 1 resumes after 1)", got)
	}
	// A new entry arrives while following: flushed at once.
	fl.more <- core.LogEntry{Seq: 3, Kind: core.LogApp, Service: "hello", Message: "live"}
	if got := readEvent(); len(got) != 3 || got[0] != "id: 3" || !strings.Contains(got[2], `"live"`) {
		t.Fatalf("followed event %q", got)
	}
	if q := fl.query(); q.AfterSeq != 1 || !q.Follow {
		t.Errorf("query %+v, want AfterSeq 1 and Follow", q)
	}
}

// TestServiceLogsFollowOutlivesReadTimeout: a follow is not cut by the
// server's ReadTimeout (the admin server has one).
func TestServiceLogsFollowOutlivesReadTimeout(t *testing.T) {
	fl := &fakeLogs{more: make(chan core.LogEntry)}
	h := newHarness(t, api.WithLogs(fl))
	h.fixture()
	srv := httptest.NewUnstartedServer(h.api)
	srv.Config.ReadTimeout = 100 * time.Millisecond
	srv.Start()
	defer srv.Close()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/v1/services/hello/logs?follow=true", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	time.Sleep(300 * time.Millisecond) // not synchronisation: three read timeouts pass
	select {
	case fl.more <- core.LogEntry{Seq: 1, Kind: core.LogApp, Service: "hello", Message: "late"}:
	case <-time.After(5 * time.Second):
		t.Fatal("the follow ended before its entry (cut by the read timeout?)")
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.Contains(line, `"late"`) {
		t.Fatalf("read %q, %v; want the late entry", line, err)
	}
}
