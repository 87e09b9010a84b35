package async

import (
	"time"

	"github.com/wisp-run/wisp/internal/core"
)

// policy is what the dispatcher needs of a service's policy.
type policy struct {
	concurrency int
	maxAttempts int
	minBackoff  time.Duration
	maxBackoff  time.Duration
	maxAge      time.Duration
}

func policyOf(p core.ScalingPolicy) policy {
	return policy{concurrency: p.AsyncConcurrency, maxAttempts: p.MaxAttempts, minBackoff: p.MinBackoff.Std(),
		maxBackoff: p.MaxBackoff.Std(), maxAge: p.MaxAge.Std()}
}

// backoff is the delay before attempt n+1 after n failed ones: full
// jitter over min·2^(n-1), capped at max, and never less than what the
// service asked for in Retry-After.
func (p policy) backoff(n int, retryAfter time.Duration, jitter func(time.Duration) time.Duration) time.Duration {
	ceil := p.minBackoff
	for i := 1; i < n && ceil < p.maxBackoff; i++ {
		ceil *= 2
	}
	ceil = min(ceil, p.maxBackoff)
	// Full jitter, but at least half the ceiling so that retries of one
	// call never bunch up at zero.
	d := ceil/2 + jitter(ceil/2+1)
	return max(d, retryAfter)
}
