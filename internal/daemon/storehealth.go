package daemon

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// storeHealth asks the store for its revision every interval and exports
// whether it answered (wisp_store_up), so an operator learns that the store
// is unreachable even while nothing changes (the feed reads only on
// changes).
type storeHealth struct {
	rev      func(ctx context.Context) (int64, error)
	log      *slog.Logger
	interval time.Duration
	up       prometheus.Gauge
	errors   prometheus.Counter
}

func newStoreHealth(reg prometheus.Registerer, rev func(ctx context.Context) (int64, error), log *slog.Logger, interval time.Duration) (*storeHealth, error) {
	h := &storeHealth{rev: rev, log: log, interval: interval,
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wisp_store_up",
			Help: "1 when the store answered the last health check (every 10 s), else 0.",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wisp_store_errors_total",
			Help: "Store health checks that failed.",
		}),
	}
	for _, c := range []prometheus.Collector{h.up, h.errors} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	h.up.Set(1) // Open has just used it
	return h, nil
}

// Run checks until ctx ends.
func (h *storeHealth) Run(ctx context.Context) error {
	t := time.NewTicker(h.interval)
	defer t.Stop()
	down := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, h.interval/2)
		_, err := h.rev(cctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			h.up.Set(0)
			h.errors.Inc()
			if !down {
				h.log.Error("the store does not answer", "err", err)
			}
			down = true
		default:
			if down {
				h.log.Info("the store answers again")
			}
			h.up.Set(1)
			down = false
		}
	}
}
