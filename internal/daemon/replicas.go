package daemon

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/wisp-run/wisp/internal/activator"
	"github.com/wisp-run/wisp/internal/config"
	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/leader"
	"github.com/wisp-run/wisp/internal/rollout"
)

// Several replicas (docs/architecture.md, "Several replicas"). Over a
// runtime whose instances every replica sees, the replicas elect a leader
// with a lease in the store (package leader); the lease's holder identity
// is "<replica-id> <admin-url>", so the others know where to report. The
// leader runs the activator as the leader and the autoscaler; every other
// replica reports its load to the leader's admin API every second, and at
// once when a request waits for a version with nothing ready.

// reportEvery is how often a follower reports its load.
const reportEvery = time.Second

// replicas is this process's part in the replicas: its identity, and, over
// a shared runtime, the election and the load reports.
type replicas struct {
	id       string
	adminURL string
	act      *activator.Activator
	rec      *rollout.Recorder // counts for the leader's rollouts; nil in some tests
	mirrors  mirrorStater      // the router's mirror states; nil until it is made
	lease    leaseHolder
	elector  *leader.Elector // nil over a runtime that is not shared
	client   *http.Client
	token    string
	log      *slog.Logger

	// Owned by the reporting goroutine.
	leaderURL     string
	failures      int
	mirrorsTooBig bool
}

// mirrorStater is the router's side of the mirror reports that a follower
// sends the leader.
type mirrorStater interface {
	MirrorStates() []core.MirrorState
}

// maxMirrorBytes bounds the mirror states in one load report: beyond it
// they are left out, so that they never make the leader refuse the load
// (the admin API takes reports of up to 8 MiB).
const maxMirrorBytes = 4 << 20

// leaseHolder finds the leader.
type leaseHolder interface {
	LeaseHolder(ctx context.Context, name string) (string, error)
}

// defaultReplicaID is the identity of a replica without --replica-id: the
// pod's name inside Kubernetes, else the host, the process and a random
// part, so that two processes on one host differ.
func defaultReplicaID() string {
	if p := os.Getenv("POD_NAME"); p != "" && core.CheckReplicaID(p) == nil {
		return p
	}
	host, err := os.Hostname()
	if err != nil || core.CheckReplicaID(host) != nil {
		host = "wisp"
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return host + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b)
}

// advertisedAdminURL is where the other replicas reach this admin API: the
// configured URL, else the admin listener's address, with the pod's IP (or
// the host name) in place of an unspecified one.
func advertisedAdminURL(cfg config.Config, ln net.Addr) string {
	if cfg.AdvertiseAdminURL != "" {
		return strings.TrimRight(cfg.AdvertiseAdminURL, "/")
	}
	host, port, err := net.SplitHostPort(ln.String())
	if err != nil {
		return adminScheme(cfg) + "://" + ln.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		if p := os.Getenv("POD_IP"); net.ParseIP(p) != nil {
			host = p
		} else if h, err := os.Hostname(); err == nil && h != "" {
			host = h
		}
	}
	return adminScheme(cfg) + "://" + net.JoinHostPort(host, port)
}

// holderIdentity is what a replica writes into the lease it holds.
func (r *replicas) holderIdentity() string { return r.id + " " + r.adminURL }

// parseHolder splits a lease holder identity into the replica's ID and its
// admin URL ("" when the holder gave none).
func parseHolder(h string) (id, url string) {
	id, url, _ = strings.Cut(strings.TrimSpace(h), " ")
	return id, strings.TrimSpace(url)
}

// reportClient is the HTTP client of load reports. Over TLS it trusts the
// admin certificate the replicas share, besides the system's roots.
func reportClient(cfg config.Config) (*http.Client, error) {
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 2, IdleConnTimeout: 90 * time.Second,
		TLSHandshakeTimeout: 2 * time.Second, ResponseHeaderTimeout: 2 * time.Second}
	if cfg.AdminTLS() {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(cfg.AdminTLSCert)
		if err != nil {
			return nil, fmt.Errorf("admin TLS certificate (--admin-tls-cert): %w", err)
		}
		pool.AppendCertsFromPEM(pem)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 3 * time.Second}, nil
}

// leaderSide is the leader's side of the reports, for the admin API.
type leaderSide struct {
	*activator.Activator
	id      string
	rec     *rollout.Recorder
	mirrors mirrorReceiver
}

// mirrorReceiver is the router's side of the mirror states the leader
// receives.
type mirrorReceiver interface {
	ReceiveMirrors(replica string, states []core.MirrorState) error
}

// ReceiveLoad refuses a report under this replica's own ID: two replicas
// with one ID would count as one, and the load of one would be lost.
func (l leaderSide) ReceiveLoad(r core.LoadReport) (core.LoadReply, error) {
	if r.Replica == l.id {
		return core.LoadReply{}, core.Conflictf("replica ID %q is this replica's own: every replica needs its own --replica-id", r.Replica)
	}
	// The mirror states first: they replace the replica's earlier ones,
	// so taking them from a report refused later changes no count. Then
	// the rollouts' numbers: a report refused for them changes nothing of
	// the load.
	if l.mirrors != nil && l.Leading() {
		if err := l.mirrors.ReceiveMirrors(r.Replica, r.Mirrors); err != nil {
			return core.LoadReply{}, core.Invalidf("mirrors", "%s", err.Error())
		}
	}
	if err := l.rec.Receive(r.Replica, r.Rollouts); err != nil {
		return core.LoadReply{}, core.Invalidf("rollouts", "%s", err.Error())
	}
	reply, err := l.Activator.ReceiveLoad(r)
	reply.Leader = l.id
	reply.Rollouts = l.rec.Tracked()
	return reply, err
}

// lead is one term as leader: the activator adopts what the runtime runs
// and manages it, and the autoscaler decides, until the term ends.
func (d *Daemon) lead(ctx context.Context) {
	if err := d.act.Lead(ctx); err != nil && ctx.Err() == nil {
		d.log.Warn("leading: could not list the runtime's instances; the next re-list adopts them", "err", err)
	}
	if d.leaderSchedules {
		done := make(chan struct{})
		go func() { defer close(done); _ = d.schedules.Run(ctx) }()
		defer func() { <-done }()
	}
	// Rollouts move traffic on the leader only.
	rolloutsDone := make(chan struct{})
	go func() { defer close(rolloutsDone); _ = d.rollouts.Run(ctx) }()
	_ = d.scaler.Run(ctx)
	<-rolloutsDone
	d.act.Follow()
}

// runReports reports this replica's load to the leader while it follows,
// every reportEvery and at once on demand, until ctx is done.
func (r *replicas) runReports(ctx context.Context) error {
	t := time.NewTicker(reportEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-r.act.Demand():
		}
		if r.act.Leading() {
			r.leaderURL = ""
			continue
		}
		err := r.report(ctx)
		switch {
		case err == nil:
			if r.failures > 0 {
				r.log.Info("reporting load to the leader again", "after_failures", r.failures)
			}
			r.failures = 0
		case ctx.Err() != nil:
			return nil
		default:
			r.leaderURL = "" // look it up again next time
			r.failures++
			if r.failures == 1 || r.failures%60 == 0 {
				r.log.Warn("cannot report load to the leader; requests that need a new instance wait until one leads", "err", err, "failures", r.failures)
			}
		}
	}
}

// errNoLeader: the lease is free (a leader died and none took over yet).
var errNoLeader = errors.New("no replica holds the leader's lease now")

// report sends one load report to the leader and applies its reply.
func (r *replicas) report(ctx context.Context) error {
	if r.leaderURL == "" {
		holder, err := r.lease.LeaseHolder(ctx, leader.DefaultName)
		if err != nil {
			return fmt.Errorf("find the leader: %w", err)
		}
		id, url := parseHolder(holder)
		switch {
		case holder == "":
			return errNoLeader
		case id == r.id:
			return nil // this replica is about to lead
		case url == "":
			return fmt.Errorf("the leader %s did not say where its admin API is", id)
		}
		r.leaderURL = url
	}
	rep := r.act.Report(r.id)
	if r.rec != nil {
		rep.Rollouts = r.rec.Snapshot()
	}
	if r.mirrors != nil {
		rep.Mirrors = r.mirrors.MirrorStates()
	}
	body, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	if len(rep.Mirrors) > 0 {
		size := len(body)
		if b, err := json.Marshal(rep.Mirrors); err == nil {
			size = len(b)
		}
		if tooBig := size > maxMirrorBytes; tooBig != r.mirrorsTooBig {
			r.mirrorsTooBig = tooBig
			if tooBig {
				r.log.Warn("the mirror states are too large to send with the load reports; the leader's mirror reports leave this replica out", "bytes", size, "limit", maxMirrorBytes)
			}
		}
		if r.mirrorsTooBig {
			rep.Mirrors = nil
			if body, err = json.Marshal(rep); err != nil {
				return err
			}
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.leaderURL+"/v1/internal/load", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+r.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return fmt.Errorf("report to %s: %w", r.leaderURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("report to %s: %w", r.leaderURL, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized:
		return fmt.Errorf("the leader at %s refused the admin token: every replica needs the same one (--admin-token, %s)", r.leaderURL, config.EnvAdminToken)
	default:
		return fmt.Errorf("the leader at %s answered %d: %s", r.leaderURL, resp.StatusCode, bytes.TrimSpace(b))
	}
	var reply core.LoadReply
	if err := json.Unmarshal(b, &reply); err != nil {
		return fmt.Errorf("the leader at %s answered a reply that is not one: %w", r.leaderURL, err)
	}
	r.act.ApplyReply(reply)
	if r.rec != nil {
		r.rec.TrackNames(reply.Rollouts)
	}
	return nil
}

// leaderMirrorReport asks the leader, found in the lease, for its
// combined report of service's mirror: a replica that does not lead has
// only its own numbers. An error wrapping core.ErrNotFound when the leader
// does not know the service.
func (r *replicas) leaderMirrorReport(ctx context.Context, service string) (core.MirrorReport, error) {
	if r.client == nil {
		return core.MirrorReport{}, errors.New("this replica reports to no leader")
	}
	holder, err := r.lease.LeaseHolder(ctx, leader.DefaultName)
	if err != nil {
		return core.MirrorReport{}, fmt.Errorf("find the leader: %w", err)
	}
	id, base := parseHolder(holder)
	switch {
	case holder == "":
		return core.MirrorReport{}, errNoLeader
	case id == r.id:
		return core.MirrorReport{}, errors.New("this replica holds the lease but does not lead yet")
	case base == "":
		return core.MirrorReport{}, fmt.Errorf("the leader %s did not say where its admin API is", id)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/internal/services/"+url.PathEscape(service)+"/mirror/report", nil)
	if err != nil {
		return core.MirrorReport{}, err
	}
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err := r.client.Do(req)
	if err != nil {
		return core.MirrorReport{}, fmt.Errorf("ask the leader %s: %w", id, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return core.MirrorReport{}, fmt.Errorf("ask the leader %s: %w", id, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return core.MirrorReport{}, core.NotFoundf("the leader %s does not know service %q yet", id, service)
	default:
		return core.MirrorReport{}, fmt.Errorf("the leader %s answered %d: %s", id, resp.StatusCode, bytes.TrimSpace(b))
	}
	var rep core.MirrorReport
	if err := json.Unmarshal(b, &rep); err != nil {
		return core.MirrorReport{}, fmt.Errorf("the leader %s answered a report that is not one: %w", id, err)
	}
	return rep, nil
}

// mirrorReports answers the mirror report over every replica: the
// leader's router adds what the others sent it; a follower asks the
// leader, and answers its own numbers, marked partial, when it cannot.
type mirrorReports struct {
	router interface {
		MirrorReport(service string) (core.MirrorReport, error)
	}
	reps *replicas
}

func (m mirrorReports) MirrorReport(ctx context.Context, service string) (core.MirrorReport, error) {
	if m.reps.act.Leading() {
		return m.router.MirrorReport(service)
	}
	rep, err := m.reps.leaderMirrorReport(ctx, service)
	if err == nil || errors.Is(err, core.ErrNotFound) || ctx.Err() != nil {
		return rep, err
	}
	m.reps.log.Warn("cannot read the leader's mirror report; answering this replica's own numbers", "service", service, "err", err)
	rep, err = m.router.MirrorReport(service)
	rep.Partial = true
	return rep, err
}

// LeaderMirrorReport is the leader's report for the followers.
func (m mirrorReports) LeaderMirrorReport(service string) (core.MirrorReport, error) {
	if !m.reps.act.Leading() {
		return core.MirrorReport{}, core.Conflictf("this replica does not lead; the leader is the holder of the lease")
	}
	return m.router.MirrorReport(service)
}
