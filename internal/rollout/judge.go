package rollout

import (
	"fmt"
	"strings"
	"time"

	"github.com/wisp-run/wisp/internal/core"
)

// Judge decides a step's check from the target's numbers over the window
// and those of the versions it replaces (base) over the same window: it
// waits while the target has fewer than MinRequests requests, fails when
// the error rate, the p99 or the p99's ratio to the base's is above its
// threshold, and passes otherwise. The ratio is compared only when the
// base has MinRequests requests too, and between the 95% confidence
// bounds of the two p99s (the target's lower, the base's upper), so that
// the noise of a small sample does not fail a step. It fills the check's numbers, result
// and detail; a pure function of its arguments.
func Judge(spec core.RolloutSpec, target, base Counts) core.RolloutCheck {
	c := core.RolloutCheck{Requests: target.Requests, Errors: target.Errors, P99: core.Duration(target.Quantile(0.99)),
		BaseRequests: base.Requests, BaseErrors: base.Errors, BaseP99: core.Duration(base.Quantile(0.99))}
	if target.Requests > 0 {
		c.ErrorRate = 100 * float64(target.Errors) / float64(target.Requests)
	}
	min := int64(spec.MinRequests)
	if target.Requests < min {
		c.Result = core.CheckWaiting
		c.Detail = fmt.Sprintf("waiting for traffic: %d of %d requests to version %d", target.Requests, min, spec.To)
		return c
	}
	var fails []string
	if maxRate := *spec.MaxErrorRate; c.ErrorRate > maxRate {
		fails = append(fails, fmt.Sprintf("error rate %s over %d requests > %s", pct(c.ErrorRate), c.Requests, pct(maxRate)))
	}
	if spec.MaxP99 > 0 && c.P99 > spec.MaxP99 {
		fails = append(fails, fmt.Sprintf("p99 %s over %d requests > %s", ms(c.P99), c.Requests, ms(spec.MaxP99)))
	}
	ratio := *spec.MaxP99Ratio
	if ratio > 0 && base.Requests >= min && c.BaseP99 > 0 {
		// A sample's p99 is noisy, most of all on the target's few
		// requests: the ratio fails only when even the target's lowest
		// likely p99 is above the ratio times the base's highest likely
		// one (95% bounds each).
		lo, _ := target.QuantileBounds(0.99)
		_, hi := base.QuantileBounds(0.99)
		if got := float64(lo) / float64(max(hi, time.Microsecond)); got > ratio {
			fails = append(fails, fmt.Sprintf("p99 %s (at least %s) is %.2f× the replaced versions' %s (at most %s) over %d and %d requests > %.2f×",
				ms(c.P99), ms(core.Duration(lo)), got, ms(c.BaseP99), ms(core.Duration(hi)), c.Requests, c.BaseRequests, ratio))
		}
	}
	if len(fails) > 0 {
		c.Result, c.Detail = core.CheckFailed, strings.Join(fails, "; ")
		return c
	}
	c.Result = core.CheckPassed
	c.Detail = fmt.Sprintf("error rate %s over %d requests, p99 %s", pct(c.ErrorRate), c.Requests, ms(c.P99))
	if base.Requests > 0 {
		c.Detail += fmt.Sprintf(" (replaced versions: p99 %s over %d requests)", ms(c.BaseP99), c.BaseRequests)
	}
	return c
}

func pct(p float64) string {
	return strings.TrimSuffix(strings.TrimSuffix(fmt.Sprintf("%.1f", p), "0"), ".") + "%"
}

func ms(d core.Duration) string {
	t := d.Std()
	if t >= 10*time.Millisecond {
		return t.Round(time.Millisecond).String()
	}
	return t.Round(10 * time.Microsecond).String()
}
