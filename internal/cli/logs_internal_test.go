package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/core"
)

func TestLogFormatColourPerInstance(t *testing.T) {
	p := &logPrinter{color: true, colors: map[string]string{}}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.Local)
	a := p.format(core.LogEntry{Time: at, Kind: core.LogApp, Version: 2, Instance: "aaa", Message: "hi"})
	b := p.format(core.LogEntry{Time: at, Kind: core.LogApp, Version: 2, Instance: "bbb", Message: "hi"})
	a2 := p.format(core.LogEntry{Time: at, Kind: core.LogPlatform, Version: 2, Instance: "aaa", Event: core.EventInstanceReady,
		Message: "ready", Fields: map[string]string{"duration_ms": "120"}})
	if a[:5] == b[:5] || !strings.HasPrefix(a2, a[:5]) {
		t.Errorf("colours: %q %q %q, want one per instance", a, b, a2)
	}
	plain := &logPrinter{colors: map[string]string{}}
	if got, want := plain.format(core.LogEntry{Time: at, Kind: core.LogPlatform, Version: 2, Instance: "aaa", Event: core.EventInstanceReady,
		Message: "ready", Fields: map[string]string{"duration_ms": "120"}}), "2026-01-02 03:04:05.000 v2 aaa | [instance.ready] ready duration_ms=120"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
