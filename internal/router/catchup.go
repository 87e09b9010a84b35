package router

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// catchUpTimeout bounds how long a request that names a service the router
// does not know (or one with no traffic) waits for the change feed.
const catchUpTimeout = 2 * time.Second

// catchUpEvery is the least time between two catch-ups: a flood of
// requests for unknown hosts costs the store at most one revision read per
// period, not one per request.
const catchUpEvery = 50 * time.Millisecond

// catchUp makes the routes as fresh as the store before a request is
// refused for naming a service the router does not know or one with no
// traffic. Without it, a version created through one replica's admin API
// and called at once through another (a load balancer in front of both)
// got a 404 or a 503 until that replica's feed caught up; a write through
// the same replica already waits for its own router (the API's barrier).
// Concurrent misses share one catch-up. It reports whether the routes may
// have changed, so that the request is resolved again.
type catchUp struct {
	wait func(context.Context) error // the feed's Sync

	mu      sync.Mutex
	running chan struct{} // closed when the catch-up in flight ends
	last    time.Time     // when the last one ended
}

func (c *catchUp) run(req *http.Request) bool {
	if c == nil || c.wait == nil {
		return false
	}
	c.mu.Lock()
	if ch := c.running; ch != nil {
		c.mu.Unlock()
		select {
		case <-ch:
			return true
		case <-req.Context().Done():
			return false
		}
	}
	if time.Since(c.last) < catchUpEvery {
		c.mu.Unlock()
		return false
	}
	ch := make(chan struct{})
	c.running = ch
	c.mu.Unlock()
	// The catch-up is shared: a client that leaves does not cut it short
	// for the others.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(req.Context()), catchUpTimeout)
	err := c.wait(ctx)
	cancel()
	c.mu.Lock()
	c.running, c.last = nil, time.Now()
	c.mu.Unlock()
	close(ch)
	return err == nil
}
