package daemon

import (
	"context"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/logs"
)

// instanceLister is what the capture of instances needs of the activator.
type instanceLister interface {
	Instances(service string) []core.InstanceInfo
}

// capturer starts the capture of an instance's output.
type capturer interface {
	Capture(service string, version int, instance string, since time.Time)
}

var _ capturer = (*logs.Logs)(nil)

// captureInterval is how often the activator's instances are listed for
// captures. Every start and adoption emits a platform event that starts
// its capture at once; the listing is the safety net for an event dropped
// by a full queue (a capture reads from the instance's start, so it loses
// nothing by starting late), and on a replica that does not lead, which
// emits no lifecycle events, it is what captures the instances the leader
// started, so every replica keeps the logs.
const captureInterval = time.Second

// runCaptures starts a capture for every instance the activator lists that
// it has not seen, until ctx ends. The log store dedupes per instance.
func runCaptures(ctx context.Context, act instanceLister, c capturer) error {
	seen := map[string]bool{}
	t := time.NewTicker(captureInterval)
	defer t.Stop()
	for {
		now := map[string]bool{}
		for _, in := range act.Instances("") {
			if in.ID == "" || in.State == core.InstanceQueued || in.State == core.InstanceBackoff {
				continue
			}
			now[in.ID] = true
			if !seen[in.ID] {
				c.Capture(in.Service, in.Version, in.ID, in.StartedAt)
			}
		}
		seen = now
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
