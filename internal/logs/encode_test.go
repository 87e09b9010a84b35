package logs

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/core"
)

// TestAppendEntryIsJSONMarshal: appendEntry writes exactly json.Marshal's
// bytes, for every field set and unset and for strings that need escaping.
func TestAppendEntryIsJSONMarshal(t *testing.T) {
	at := time.Date(2026, 12, 2, 10, 11, 12, 123456789, time.UTC)
	strs := []string{"", "plain", `quote " and \ backslash`, "tab\tnl\nret\rbs\bff\f", "\x00\x01\x1f\x7f",
		"<b>&amp;</b>", "ünïcödé ✓ 😀", "bad \xff\xfe utf-8 \xe2\x82", "line\u2028sep\u2029para", "trailing \\"}
	entries := []core.LogEntry{
		{},
		{Seq: 1, Time: at, Kind: core.LogApp, Service: "hello", Message: "hi"},
		{Seq: 18446744073709551615, Time: at.In(time.FixedZone("x", 3600)), Kind: core.LogPlatform, Service: "s", Version: -3,
			Instance: "i", Stream: "stderr", Event: core.EventInstanceReady, Message: "m",
			Fields: map[string]string{"z": "1", "a": "<&>", "m": ""}},
		{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.Local), Fields: map[string]string{}},
	}
	for _, s := range strs {
		entries = append(entries, core.LogEntry{Seq: 7, Time: at, Kind: core.LogKind(s), Service: s, Instance: s,
			Stream: s, Event: s, Message: s, Version: 2, Fields: map[string]string{s: s}})
	}
	for i, e := range entries {
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := appendEntry([]byte("prefix"), &e)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if string(got) != "prefix"+string(want) {
			t.Errorf("entry %d:\n got %s\nwant prefix%s", i, got, want)
		}
	}
	bad := core.LogEntry{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, err := appendEntry(nil, &bad); err == nil {
		t.Error("year 10000: no error, want one (json.Marshal refuses it too)")
	}
}

func BenchmarkEncodeEntry(b *testing.B) {
	e := core.LogEntry{Seq: 123456, Time: time.Now(), Kind: core.LogApp, Service: "benchlogs", Version: 1,
		Instance: "benchlogs-1-abcdef", Stream: "stdout", Message: "2026-12-02T10:00:00Z greeter: served request 12345 in 0.2 ms from 172.17.0.1"}
	b.Run("json.Marshal", func(b *testing.B) {
		for b.Loop() {
			_, _ = json.Marshal(e)
		}
	})
	b.Run("appendEntry", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf, _ = appendEntry(buf[:0], &e)
		}
	})
}
