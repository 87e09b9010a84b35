package logs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wisp-run/wisp/internal/core"
)

// Config configures the log store.
type Config struct {
	// Dir holds one directory of segments per service (the daemon uses
	// <data-dir>/logs).
	Dir string
	// Retention applies to services without their own (SetRetention);
	// zero fields take core.DefaultLogMaxBytes and core.DefaultLogMaxAge.
	Retention core.LogRetention
	// QueueSize bounds the entries waiting for the writer (default 65536);
	// Append drops beyond it.
	QueueSize int
	// FlushInterval is how often buffered entries reach the files and
	// followers (default 100 ms).
	FlushInterval time.Duration
	// RetentionInterval is how often retention runs besides after each
	// roll (default 1 minute).
	RetentionInterval time.Duration
	// Runtime, when set, is where instances' output is captured from.
	Runtime Runtime
	// CaptureRetry bounds how long a capture retries a failing Logs
	// (default 60 s).
	CaptureRetry time.Duration
	// Registerer, when set, gets the metrics.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Retention.MaxBytes == 0 {
		c.Retention.MaxBytes = core.DefaultLogMaxBytes
	}
	if c.Retention.MaxAge == 0 {
		c.Retention.MaxAge = core.DefaultLogMaxAge
	}
	if c.QueueSize == 0 {
		c.QueueSize = 1 << 16
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = 100 * time.Millisecond
	}
	if c.RetentionInterval == 0 {
		c.RetentionInterval = time.Minute
	}
	if c.CaptureRetry == 0 {
		c.CaptureRetry = 60 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate checks the configuration (after defaults).
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("logs: Dir is empty")
	}
	if err := c.Retention.Validate(); err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	if c.QueueSize < 1 {
		return fmt.Errorf("logs: queue size %d is below 1", c.QueueSize)
	}
	if c.FlushInterval <= 0 || c.RetentionInterval <= 0 || c.CaptureRetry <= 0 {
		return errors.New("logs: intervals must be positive")
	}
	return nil
}

// Logs is the log store. Append may be called from any goroutine; Run
// must run for entries to be written.
type Logs struct {
	cfg Config
	log *slog.Logger
	m   *metrics

	queue   chan item
	flushc  chan chan struct{}
	ran     chan struct{} // closed when Run starts
	done    chan struct{} // closed when Run returns
	closedc chan struct{} // closed by Close
	endc    chan struct{} // closed by EndFollows
	endOnce sync.Once
	closeMu sync.Once
	closed  atomic.Bool

	mu       sync.Mutex
	services map[string]*service
	notify   chan struct{}          // closed and replaced after each flush that wrote
	lastTime map[string]time.Time   // newest app line stored, by instance
	captures map[string]*captureRec // by instance; owned by the writer (under mu)
	encBuf   []byte                 // the writer's encoding buffer (under mu)
}

// item is an entry or a control message for the writer.
type item struct {
	entry   core.LogEntry
	batch   []core.LogEntry // a capture's app lines, written as they are
	remove  string          // RemoveService
	capture bool            // Capture: entry names the instance, stored not
}

// service is one service's stream: its segments (oldest first) and the
// open last one.
type service struct {
	name      string
	dir       string
	seq       uint64
	segs      []*segment
	file      *os.File
	w         *bufio.Writer
	dirty     bool
	retention *core.LogRetention // nil: the default
}

type segment struct {
	first  uint64
	path   string
	size   int64
	newest time.Time // Time of its last entry
}

// Open reads what is stored under cfg.Dir: each service's segments, its
// last Seq (writing goes on after it) and each instance's newest line; a
// torn last line (a crash mid-write) is cut off.
func Open(cfg Config) (*Logs, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("logs: %w", err)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("logs: metrics: %w", err)
	}
	l := &Logs{cfg: cfg, log: cfg.Logger.With("component", "logs"), m: m,
		queue: make(chan item, cfg.QueueSize), flushc: make(chan chan struct{}),
		ran: make(chan struct{}), done: make(chan struct{}), closedc: make(chan struct{}), endc: make(chan struct{}),
		services: map[string]*service{}, notify: make(chan struct{}),
		lastTime: map[string]time.Time{}, captures: map[string]*captureRec{}}
	dirs, err := os.ReadDir(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("logs: %w", err)
	}
	for _, d := range dirs {
		if !d.IsDir() || !validName(d.Name()) {
			continue
		}
		s, err := l.openService(d.Name())
		if err != nil {
			return nil, err
		}
		if len(s.segs) > 0 {
			l.services[s.name] = s
		}
	}
	return l, nil
}

func validName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, `/\`) && len(s) <= 255
}

// openService recovers one service's directory.
func (l *Logs) openService(name string) (*service, error) {
	s := &service{name: name, dir: filepath.Join(l.cfg.Dir, name)}
	files, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("logs: %w", err)
	}
	for _, f := range files {
		first, ok := strings.CutSuffix(f.Name(), ".seg")
		if !ok || f.IsDir() {
			continue
		}
		n, err := strconv.ParseUint(first, 10, 64)
		if err != nil {
			continue
		}
		s.segs = append(s.segs, &segment{first: n, path: filepath.Join(s.dir, f.Name())})
	}
	slices.SortFunc(s.segs, func(a, b *segment) int { return compareU64(a.first, b.first) })
	for i, seg := range s.segs {
		last := i == len(s.segs)-1
		if last {
			if err := truncateTorn(seg.path); err != nil {
				return nil, fmt.Errorf("logs: recover %s: %w", seg.path, err)
			}
		}
		fi, err := os.Stat(seg.path)
		if err != nil {
			return nil, fmt.Errorf("logs: %w", err)
		}
		seg.size = fi.Size()
		if last {
			// The last segment is read whole: its last Seq, and the newest
			// line of each instance (a capture resumed after a restart skips
			// what is stored).
			if _, err := scanSegment(seg.path, 0, func(e core.LogEntry) error {
				s.seq = max(s.seq, e.Seq)
				seg.newest = e.Time
				if e.Kind == core.LogApp && e.Instance != "" && e.Time.After(l.lastTime[e.Instance]) {
					l.lastTime[e.Instance] = e.Time
				}
				return nil
			}); err != nil {
				return nil, err
			}
			if s.seq == 0 {
				s.seq = seg.first - 1
			}
		} else if e, ok, err := lastEntry(seg.path); err != nil {
			return nil, err
		} else if ok {
			seg.newest = e.Time
		}
	}
	// An empty last segment is dropped (it is recreated on the next write).
	if n := len(s.segs); n > 0 && s.segs[n-1].size == 0 {
		_ = os.Remove(s.segs[n-1].path)
		s.segs = s.segs[:n-1]
	}
	return s, nil
}

func compareU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Append queues e for writing. It never blocks: when the writer is
// behind, e is dropped and counted in wisp_log_dropped_total.
func (l *Logs) Append(e core.LogEntry) {
	if l.closed.Load() {
		l.m.dropped.Inc()
		return
	}
	select {
	case l.queue <- item{entry: e}:
	default:
		l.m.dropped.Inc()
	}
}

// appendBatchWait queues entries (of one capture: app lines), waiting
// while the queue is full (the runtime keeps the output meanwhile). The
// writer owns entries after.
func (l *Logs) appendBatchWait(ctx context.Context, entries []core.LogEntry) error {
	select {
	case l.queue <- item{batch: entries}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Capture starts capturing instance's output from since on, as an
// EventInstanceStarting entry does, without storing an entry: for a caller
// that learns of instances another way (the daemon lists the activator's
// until every start and adoption emits its event). An instance already
// captured is left alone. Like Append it never blocks.
func (l *Logs) Capture(service string, version int, instance string, since time.Time) {
	if l.closed.Load() || instance == "" || !validName(service) {
		return
	}
	e := core.LogEntry{Kind: core.LogPlatform, Event: core.EventInstanceStarting, Service: service,
		Version: version, Instance: instance, Time: since}
	select {
	case l.queue <- item{entry: e, capture: true}:
	default:
		l.m.dropped.Inc()
	}
}

// SetRetention sets service's retention (applied at the next roll or
// retention run); a zero field keeps the default.
func (l *Logs) SetRetention(svc string, r core.LogRetention) {
	if r.MaxBytes == 0 {
		r.MaxBytes = l.cfg.Retention.MaxBytes
	}
	if r.MaxAge == 0 {
		r.MaxAge = l.cfg.Retention.MaxAge
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.serviceLocked(svc)
	s.retention = &r
}

// RemoveService deletes service's stream (the service was deleted). It is
// queued behind the entries already appended.
func (l *Logs) RemoveService(name string) {
	if !validName(name) {
		return
	}
	select {
	case l.queue <- item{remove: name}:
	default:
		// Behind: remove now; entries still queued recreate a stream that
		// age retention removes later.
		l.mu.Lock()
		l.removeLocked(name)
		l.mu.Unlock()
	}
}

func (l *Logs) serviceLocked(name string) *service {
	s := l.services[name]
	if s == nil {
		s = &service{name: name, dir: filepath.Join(l.cfg.Dir, name)}
		l.services[name] = s
	}
	return s
}

func (l *Logs) removeLocked(name string) {
	s := l.services[name]
	if s != nil && s.file != nil {
		_ = s.file.Close()
	}
	delete(l.services, name)
	if err := os.RemoveAll(filepath.Join(l.cfg.Dir, name)); err != nil {
		l.log.Warn("remove a service's logs", "service", name, "error", err)
	}
}

// Run writes queued entries until ctx ends, then writes what is queued,
// flushes and closes the files, and waits for the captures it started.
func (l *Logs) Run(ctx context.Context) error {
	close(l.ran)
	defer close(l.done)
	var captures sync.WaitGroup
	flush := time.NewTicker(l.cfg.FlushInterval)
	defer flush.Stop()
	retention := time.NewTicker(l.cfg.RetentionInterval)
	defer retention.Stop()
	for {
		select {
		case <-ctx.Done():
			captures.Wait()
			l.closed.Store(true)
			l.drain(ctx, &captures, len(l.queue))
			l.mu.Lock()
			l.flushLocked()
			for _, s := range l.services {
				if s.file != nil {
					_ = s.file.Close()
					s.file, s.w = nil, nil
				}
			}
			l.mu.Unlock()
			return nil
		case it := <-l.queue:
			l.mu.Lock()
			l.handleLocked(ctx, &captures, it)
			l.mu.Unlock()
			// What else is queued goes in the same critical section.
			l.drain(ctx, &captures, len(l.queue))
		case <-flush.C:
			l.mu.Lock()
			l.flushLocked()
			l.mu.Unlock()
		case reply := <-l.flushc:
			l.drain(ctx, &captures, len(l.queue))
			l.mu.Lock()
			l.flushLocked()
			l.mu.Unlock()
			close(reply)
		case <-retention.C:
			l.mu.Lock()
			for _, s := range l.services {
				l.retainLocked(s, time.Now())
			}
			l.mu.Unlock()
		}
	}
}

func (l *Logs) drain(ctx context.Context, captures *sync.WaitGroup, n int) {
	if n == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for range n {
		select {
		case it := <-l.queue:
			l.handleLocked(ctx, captures, it)
		default:
			return
		}
	}
}

func (l *Logs) handleLocked(ctx context.Context, captures *sync.WaitGroup, it item) {
	if it.remove != "" {
		l.removeLocked(it.remove)
		return
	}
	if it.capture {
		l.captureEventLocked(ctx, captures, it.entry)
		return
	}
	if it.batch != nil {
		l.writeBatchLocked(it.batch)
		return
	}
	e := it.entry
	if !validName(e.Service) {
		l.m.dropped.Inc()
		return
	}
	if e.Kind == "" {
		e.Kind = core.LogApp
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if err := l.writeLocked(e); err != nil {
		l.log.Error("write a log entry", "service", e.Service, "error", err)
		l.m.dropped.Inc()
		return
	}
	l.m.entries.WithLabelValues(string(e.Kind)).Inc()
	if e.Kind == core.LogPlatform {
		l.m.platform.WithLabelValues(e.Service, e.Event).Inc()
		l.captureEventLocked(ctx, captures, e)
	}
	if e.Kind == core.LogApp && e.Instance != "" && e.Time.After(l.lastTime[e.Instance]) {
		l.lastTime[e.Instance] = e.Time
	}
}

// writeBatchLocked writes a capture's lines: app entries of one
// instance, each with its service, time and stream set.
func (l *Logs) writeBatchLocked(batch []core.LogEntry) {
	if len(batch) == 0 {
		return
	}
	if !validName(batch[0].Service) {
		l.m.dropped.Add(float64(len(batch)))
		return
	}
	written := 0
	var newest time.Time
	for _, e := range batch {
		if err := l.writeLocked(e); err != nil {
			l.log.Error("write a log entry", "service", e.Service, "error", err)
			l.m.dropped.Inc()
			continue
		}
		written++
		if e.Time.After(newest) {
			newest = e.Time
		}
	}
	l.m.app.Add(float64(written))
	if in := batch[0].Instance; in != "" && newest.After(l.lastTime[in]) {
		l.lastTime[in] = newest
	}
}

// segmentBytes is where a service's segments roll: an eighth of what it
// keeps, within 1-8 MiB, so that retention removes at most an eighth at a
// time and a tail reads at most one or two files.
func segmentBytes(r core.LogRetention) int64 {
	return min(max(r.MaxBytes/8, 1<<20), 8<<20)
}

func (l *Logs) retentionOf(s *service) core.LogRetention {
	if s.retention != nil {
		return *s.retention
	}
	return l.cfg.Retention
}

func (l *Logs) writeLocked(e core.LogEntry) error {
	s := l.serviceLocked(e.Service)
	s.seq++
	e.Seq = s.seq
	b, err := appendEntry(l.encBuf[:0], &e)
	if err != nil {
		s.seq--
		return err
	}
	b = append(b, '\n')
	l.encBuf = b
	if s.file == nil || s.segs[len(s.segs)-1].size >= segmentBytes(l.retentionOf(s)) {
		if err := l.rollLocked(s, e.Seq); err != nil {
			s.seq--
			return err
		}
	}
	if _, err := s.w.Write(b); err != nil {
		return err
	}
	seg := s.segs[len(s.segs)-1]
	seg.size += int64(len(b))
	seg.newest = e.Time
	s.dirty = true
	return nil
}

// rollLocked opens the segment next entries go to: the last one again
// after a restart while it has room, else a new one starting at seq.
func (l *Logs) rollLocked(s *service, seq uint64) error {
	rolled := false
	if s.file != nil {
		if err := s.w.Flush(); err != nil {
			return err
		}
		_ = s.file.Close()
		s.file, s.w = nil, nil
		rolled = true
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return err
	}
	if n := len(s.segs); !rolled && n > 0 && s.segs[n-1].size < segmentBytes(l.retentionOf(s)) {
		f, err := os.OpenFile(s.segs[n-1].path, os.O_WRONLY|os.O_APPEND, 0)
		if err == nil {
			s.file, s.w = f, bufio.NewWriterSize(f, 64<<10)
			return nil
		}
	}
	path := filepath.Join(s.dir, strconv.FormatUint(seq, 10)+".seg")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600) //nolint:gosec // G304: the service's own directory under the log dir
	if err != nil {
		return err
	}
	s.file, s.w = f, bufio.NewWriterSize(f, 64<<10)
	s.segs = append(s.segs, &segment{first: seq, path: path})
	if rolled {
		l.retainLocked(s, time.Now())
	}
	return nil
}

// retainLocked removes s's oldest segments while it holds more than its
// MaxBytes, and those whose newest entry is older than MaxAge. The segment
// being written is removed only by age (then the next write starts anew).
func (l *Logs) retainLocked(s *service, now time.Time) {
	r := l.retentionOf(s)
	var total int64
	for _, seg := range s.segs {
		total += seg.size
	}
	cutoff := now.Add(-r.MaxAge)
	for len(s.segs) > 0 {
		seg := s.segs[0]
		active := len(s.segs) == 1 && s.file != nil
		old := !seg.newest.IsZero() && seg.newest.Before(cutoff)
		if !old && (total <= r.MaxBytes || active) {
			break
		}
		if active {
			_ = s.w.Flush()
			_ = s.file.Close()
			s.file, s.w = nil, nil
		}
		if err := os.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			l.log.Warn("remove a log segment", "path", seg.path, "error", err)
			return
		}
		total -= seg.size
		s.segs = s.segs[1:]
	}
	// Segments after a removed old one may be old too (each newer than
	// the one before), which the loop above already handled in order.
}

func (l *Logs) flushLocked() {
	wrote := false
	for _, s := range l.services {
		if !s.dirty || s.w == nil {
			continue
		}
		if err := s.w.Flush(); err != nil {
			l.log.Error("flush logs", "service", s.name, "error", err)
		}
		s.dirty = false
		wrote = true
	}
	if wrote {
		close(l.notify)
		l.notify = make(chan struct{})
	}
}

// sync makes what was appended before it visible to readers: the writer
// writes what is queued and flushes. It waits for Run to start; after Run
// or Close it returns at once (readers see what is on disk).
func (l *Logs) sync(ctx context.Context) error {
	select {
	case <-l.ran:
	case <-l.closedc:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	reply := make(chan struct{})
	select {
	case l.flushc <- reply:
	case <-l.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-reply:
		return nil
	case <-l.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops accepting entries. Run flushes and closes the files when
// its context ends; Close only matters when Run never ran.
func (l *Logs) Close() error {
	l.closed.Store(true)
	l.closeMu.Do(func() { close(l.closedc) })
	select {
	case <-l.ran:
		return nil
	default:
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.services {
		if s.file != nil {
			_ = s.w.Flush()
			_ = s.file.Close()
			s.file, s.w = nil, nil
		}
	}
	return nil
}

// EndFollows ends every following Query (they return nil) and makes later
// ones return after their history: the daemon calls it before it shuts
// the admin API down, which waits for open responses.
func (l *Logs) EndFollows() { l.endOnce.Do(func() { close(l.endc) }) }

// DiskUsage returns the bytes service's segments hold (tests, metrics).
func (l *Logs) DiskUsage(svc string) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n int64
	if s := l.services[svc]; s != nil {
		for _, seg := range s.segs {
			n += seg.size
		}
	}
	return n
}
