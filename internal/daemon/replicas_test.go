package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/apiclient"
	"github.com/wisp-run/wisp/internal/config"
	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/daemon"
	"github.com/wisp-run/wisp/internal/runtime"
	"github.com/wisp-run/wisp/internal/runtime/fake"
	"github.com/wisp-run/wisp/internal/store"
	"github.com/wisp-run/wisp/internal/store/sqlite"
)

// Several replicas: daemons in this process that share one SQLite file
// (a store handle each, as separate processes have) and one fake runtime
// in shared mode (a cluster), over real HTTP.

// clusterToken is the admin token every replica shares.
const clusterToken = "replicas-test-token-0123456789"

// replica is one `wisp serve` of a test cluster.
type replica struct {
	name  string
	d     *daemon.Daemon
	stop  func()
	store *cuttableStore
	api   *apiclient.Client
}

// cuttableStore is a store whose lease calls fail once cut, as those of a
// replica that crashed or lost the store: its lease is neither renewed nor
// released, so the others wait for it to expire.
type cuttableStore struct {
	store.Store
	cut atomic.Bool
	// cutLookup makes finding the leader fail: the replica cannot reach
	// it.
	cutLookup atomic.Bool
}

func (s *cuttableStore) LeaseHolder(ctx context.Context, name string) (string, error) {
	if s.cutLookup.Load() {
		return "", errCut
	}
	return s.Store.LeaseHolder(ctx, name)
}

var errCut = errors.New("cut off from the store")

func (s *cuttableStore) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if s.cut.Load() {
		return false, errCut
	}
	return s.Store.AcquireLease(ctx, name, holder, ttl)
}

func (s *cuttableStore) ReleaseLease(ctx context.Context, name, holder string) error {
	if s.cut.Load() {
		return errCut
	}
	return s.Store.ReleaseLease(ctx, name, holder)
}

// sharedFake is a fake cluster; behave may be nil.
func sharedFake(behave func(runtime.InstanceSpec) fake.Behavior) *fake.Runtime {
	return fake.New(fake.Config{Images: map[string]string{"hello:1": "sha256:hello1"}, Behave: behave, Shared: true})
}

// newCluster starts n replicas over rt; edit, if not nil, changes every
// replica's config.
func newCluster(t *testing.T, n int, rt *fake.Runtime, edit func(*config.Config)) []*replica {
	t.Helper()
	db := filepath.Join(t.TempDir(), "wisp.db")
	var out []*replica
	for i := range n {
		st, err := sqlite.Open(t.Context(), db)
		if err != nil {
			t.Fatal(err)
		}
		cs := &cuttableStore{Store: st}
		name := fmt.Sprintf("r%d", i)
		d, stop := runDaemon(t, t.TempDir(), func(c *config.Config) {
			c.AdminToken = clusterToken
			c.ReplicaID = name
			c.LeaderLease = 2 * time.Second
			c.ReapInterval = 100 * time.Millisecond
			if edit != nil {
				edit(c)
			}
		}, daemon.Options{Runtime: rt, Store: cs})
		out = append(out, &replica{name: name, d: d, stop: stop, store: cs, api: apiclient.New(d.AdminAddr().String(), clusterToken)})
	}
	return out
}

// leaderOf waits until exactly one of rs leads and returns it and the
// others.
func leaderOf(t *testing.T, rs []*replica, within time.Duration) (*replica, []*replica) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var leaders, others []*replica
		for _, r := range rs {
			info, err := r.api.Info(t.Context())
			if err != nil {
				t.Fatalf("info of %s: %v", r.name, err)
			}
			if info.Replica != r.name {
				t.Fatalf("info of %s names replica %q", r.name, info.Replica)
			}
			if info.Leader {
				leaders = append(leaders, r)
			} else {
				others = append(others, r)
			}
		}
		if len(leaders) == 1 {
			return leaders[0], others
		}
		if len(leaders) > 1 {
			t.Fatalf("%d replicas lead at once", len(leaders))
		}
		if time.Now().After(deadline) {
			t.Fatalf("no replica leads after %s", within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// deploy creates service hello with one version (all its traffic) through
// the first replica, then changes its policy through every other one, so
// that every replica's change feed has the version when it returns.
// twoVersionsOnTwoReplicas starts two replicas over rt and deploys two
// versions of service hello (version 1 with all the traffic).
func twoVersionsOnTwoReplicas(t *testing.T, rt *fake.Runtime) (lead, follower *replica) {
	t.Helper()
	rs := newCluster(t, 2, rt, nil)
	lead, followers := leaderOf(t, rs, 5*time.Second)
	deploy(t, rs, core.VersionSpec{}, core.PolicyPatch{})
	if _, err := lead.api.CreateVersion(t.Context(), "hello", core.VersionSpec{Image: "hello:1"}); err != nil {
		t.Fatal(err)
	}
	return lead, followers[0]
}

func deploy(t *testing.T, rs []*replica, spec core.VersionSpec, patch core.PolicyPatch) {
	t.Helper()
	ctx := t.Context()
	if _, err := rs[0].api.CreateService(ctx, "hello", patch); err != nil {
		t.Fatal(err)
	}
	if spec.Image == "" {
		spec.Image = "hello:1"
	}
	if _, err := rs[0].api.CreateVersion(ctx, "hello", spec); err != nil {
		t.Fatal(err)
	}
	sync := patch
	if sync == (core.PolicyPatch{}) {
		n := core.DefaultMaxInstances
		sync.MaxInstances = &n
	}
	for _, r := range rs[1:] {
		if _, err := r.api.UpdatePolicy(ctx, "hello", sync); err != nil {
			t.Fatal(err)
		}
	}
}

// hit sends one request for hello through r's router.
func hit(ctx context.Context, r *replica, path string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+r.d.RouterAddr().String()+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = "hello.localhost"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// burst sends n requests at once, to the replicas in turn, and returns the
// failures.
func burst(t *testing.T, rs []*replica, n int, path string) []string {
	t.Helper()
	var mu sync.Mutex
	var failed []string
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rs[i%len(rs)]
			code, body, err := hit(t.Context(), r, path)
			if err != nil || code != 200 {
				mu.Lock()
				failed = append(failed, fmt.Sprintf("via %s: %d %q %v", r.name, code, body, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return failed
}

// running lists the IDs of the instances the cluster runs.
func running(t *testing.T, rt *fake.Runtime) []string {
	t.Helper()
	list, err := rt.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, in := range list {
		if in.State == runtime.StateRunning {
			ids = append(ids, in.ID)
		}
	}
	sort.Strings(ids)
	return ids
}

// TestReplicasColdStartOnce: the first requests for a version reach both
// replicas at once; one instance starts (by the leader: the follower asks
// it), and every request is served.
func TestReplicasColdStartOnce(t *testing.T) {
	t.Parallel()
	rt := sharedFake(func(runtime.InstanceSpec) fake.Behavior { return fake.Behavior{StartDelay: 200 * time.Millisecond} })
	rs := newCluster(t, 2, rt, nil)
	lead, followers := leaderOf(t, rs, 5*time.Second)
	deploy(t, rs, core.VersionSpec{}, core.PolicyPatch{})
	if failed := burst(t, []*replica{followers[0], lead}, 10, "/"); len(failed) > 0 {
		t.Fatalf("%d of 10 requests failed: %v", len(failed), failed)
	}
	if n := rt.Attempts(); n != 1 {
		t.Fatalf("%d starts for the first requests of one version through two replicas, want 1", n)
	}
	// The follower uses the instance the leader started, not one of its own.
	infos, err := followers[0].api.Instances(t.Context(), "hello")
	if err != nil || len(infos) != 1 || infos[0].State != core.InstanceReady {
		t.Fatalf("the follower's instances: %+v, %v; want the one ready instance", infos, err)
	}
	if got := running(t, rt); len(got) != 1 || got[0] != infos[0].ID {
		t.Fatalf("running %v, the follower uses %s", got, infos[0].ID)
	}
	for r, want := range map[*replica]string{lead: "wisp_leader 1", followers[0]: "wisp_leader 0"} {
		b, err := r.api.Raw(t.Context(), "GET", "/metrics", nil)
		if err != nil || !strings.Contains(string(b), "\n"+want+"\n") {
			t.Fatalf("metrics of %s: want %q (%v)", r.name, want, err)
		}
	}
}

// TestReplicasScaleOnSummedLoad: ten concurrent slow requests split over
// two replicas, with one request per instance, scale to about ten
// instances: the leader decides on the load of both, not on its half.
func TestReplicasScaleOnSummedLoad(t *testing.T) {
	t.Parallel()
	rt := sharedFake(nil)
	rs := newCluster(t, 2, rt, func(c *config.Config) { c.PanicWindow = time.Second; c.StableWindow = 10 * time.Second })
	leaderOf(t, rs, 5*time.Second)
	one := 1
	deploy(t, rs, core.VersionSpec{MaxConcurrency: 1}, core.PolicyPatch{TargetConcurrency: &one})
	began := time.Now()
	if failed := burst(t, rs, 10, "/sleep?ms=3000"); len(failed) > 0 {
		t.Fatalf("%d of 10 requests failed: %v", len(failed), failed)
	}
	// On its own half of the load the leader would have started 5.
	if n := rt.Starts(); n < 9 || n > 11 {
		t.Fatalf("%d instances started for 10 concurrent requests over two replicas, want about 10", n)
	}
	if d := time.Since(began); d > 10*time.Second {
		t.Fatalf("the burst took %s", d)
	}
}

// TestReplicasReapOnce: an instance used only through a follower scales to
// zero once, removed by the leader alone (after the follower stopped using
// it); nothing is stopped twice, and the follower forgets it.
func TestReplicasReapOnce(t *testing.T) {
	t.Parallel()
	rt := sharedFake(nil)
	rs := newCluster(t, 2, rt, nil)
	_, followers := leaderOf(t, rs, 5*time.Second)
	f := followers[0]
	idle, pause := core.Duration(time.Second), core.Duration(0)
	deploy(t, rs, core.VersionSpec{}, core.PolicyPatch{IdleTimeout: &idle, PauseAfter: &pause})
	for range 3 {
		if code, body, err := hit(t.Context(), f, "/"); err != nil || code != 200 {
			t.Fatalf("through the follower: %d %q %v", code, body, err)
		}
	}
	if got := running(t, rt); len(got) != 1 {
		t.Fatalf("running %v, want one instance", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(running(t, rt)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("still running after 10s: %v", running(t, rt))
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // anything else would have happened by now
	if n := rt.Stops(); n != 1 {
		t.Fatalf("%d stops for one idle instance, want 1 (the leader's)", n)
	}
	for _, r := range rs {
		if infos, err := r.api.Instances(t.Context(), "hello"); err != nil || len(infos) != 0 {
			t.Fatalf("%s still lists %+v (%v)", r.name, infos, err)
		}
	}
}

// TestReplicasLeaderCrash: the leader crashes (its lease is neither renewed
// nor released, its servers close) in the middle of a burst through the
// follower. The follower leads within the lease's expiry, adopts the
// instances without stopping or restarting any, scales for the burst, and
// every request through it succeeds.
func TestReplicasLeaderCrash(t *testing.T) {
	t.Parallel()
	rt := sharedFake(nil)
	rs := newCluster(t, 2, rt, func(c *config.Config) { c.PanicWindow = time.Second; c.StableWindow = 10 * time.Second })
	lead, followers := leaderOf(t, rs, 5*time.Second)
	f := followers[0]
	two := 2
	deploy(t, rs, core.VersionSpec{MaxConcurrency: 2}, core.PolicyPatch{TargetConcurrency: &two})
	if code, _, err := hit(t.Context(), f, "/"); err != nil || code != 200 {
		t.Fatalf("warm-up: %d %v", code, err)
	}
	before := running(t, rt)

	var ok, failed atomic.Int64
	var errsMu sync.Mutex
	var errs []string
	stopBurst := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stopBurst:
					return
				default:
				}
				code, body, err := hit(t.Context(), f, "/sleep?ms=100")
				if err != nil || code != 200 {
					failed.Add(1)
					errsMu.Lock()
					errs = append(errs, fmt.Sprintf("%d %q %v", code, body, err))
					errsMu.Unlock()
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	stopsBefore := rt.Stops()
	lead.store.cut.Store(true) // crash: no renewal, no release
	killed := time.Now()
	lead.stop()
	if n := rt.Stops(); n != stopsBefore {
		t.Errorf("the crashed leader stopped %d instances on its way out", n-stopsBefore)
	}

	newLeader, _ := leaderOf(t, []*replica{f}, 15*time.Second)
	took := time.Since(killed)
	t.Logf("the follower leads %s after the crash", took.Round(time.Millisecond))
	if took > 4*time.Second { // the lease (2s) and a renewal period
		t.Errorf("handover took %s with a lease of 2s", took)
	}
	time.Sleep(2 * time.Second) // the burst goes on under the new leader
	close(stopBurst)
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d of %d requests through the follower failed across the crash: %v", failed.Load(), failed.Load()+ok.Load(), errs)
	}
	if ok.Load() < 50 {
		t.Fatalf("only %d requests in 3.5s", ok.Load())
	}

	// It adopted what ran: every instance of before still runs, and it
	// lists every running instance.
	now := running(t, rt)
	for _, id := range before {
		if !contains(now, id) {
			t.Errorf("instance %s of before the crash no longer runs (running: %v)", id, now)
		}
	}
	infos, err := newLeader.api.Instances(t.Context(), "hello")
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, in := range infos {
		listed = append(listed, in.ID)
	}
	for _, id := range now {
		if !contains(listed, id) {
			t.Errorf("the new leader does not list running instance %s (lists %v)", id, listed)
		}
	}
	if len(now) < 2 {
		t.Errorf("running %v: 8 concurrent requests at 2 per instance should have scaled beyond one", now)
	}
}

// TestReplicasBackoffReachesFollowers: a version whose starts fail,
// reached through a follower, answers 503 with the leader's reason and
// Retry-After within a report or two, not after the wait timeout; and the
// leader's backoff holds for both replicas (one start per backoff period).
func TestReplicasBackoffReachesFollowers(t *testing.T) {
	t.Parallel()
	rt := sharedFake(func(runtime.InstanceSpec) fake.Behavior { return fake.Behavior{StartErr: fake.ErrStart} })
	rs := newCluster(t, 2, rt, nil)
	_, followers := leaderOf(t, rs, 5*time.Second)
	deploy(t, rs, core.VersionSpec{}, core.PolicyPatch{})
	began := time.Now()
	code, body, err := hit(t.Context(), followers[0], "/")
	if err != nil || code != 503 || !strings.Contains(body, fake.ErrStart.Error()) {
		t.Fatalf("through the follower: %d %q %v, want 503 naming the start failure", code, body, err)
	}
	if d := time.Since(began); d > 3*time.Second {
		t.Fatalf("the follower answered after %s, want within a report or two", d)
	}
	// For 3 s, requests through both replicas: every one a 503 naming the
	// failure, and starts only as the backoff allows (1 s, 2 s, …): no
	// retry storm from the follower's requests.
	n := 0
	for time.Since(began) < 3*time.Second {
		r := rs[n%2]
		n++
		code, body, _ := hit(t.Context(), r, "/")
		if code != 503 || !strings.Contains(body, fake.ErrStart.Error()) {
			t.Fatalf("via %s: %d %q, want 503 naming the start failure", r.name, code, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if a := rt.Attempts(); a > 3 {
		t.Fatalf("%d start attempts in 3 s for %d requests, want at most 3 (backoff 1 s, then 2 s)", a, n)
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// TestReplicasLoadRouteBadInput: the internal load route answers bad input
// with a 4xx naming it, never a 500; versions the leader does not know are
// listed as ignored (the leader's change feed may lag the follower's), and
// a follower refuses reports with 409.
func TestReplicasLoadRouteBadInput(t *testing.T) {
	t.Parallel()
	rt := sharedFake(nil)
	rs := newCluster(t, 2, rt, nil)
	lead, followers := leaderOf(t, rs, 5*time.Second)
	deploy(t, rs, core.VersionSpec{}, core.PolicyPatch{})
	post := func(r *replica, token, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), "POST", "http://"+r.d.AdminAddr().String()+"/v1/internal/load", strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	cases := []struct {
		name, token, body string
		status            int
		says              string
	}{
		{"malformed JSON", clusterToken, `{"replica":"x","versions":[{`, 400, "malformed JSON"},
		{"not JSON", clusterToken, `load=3`, 400, "malformed JSON"},
		{"unknown field", clusterToken, `{"replica":"x","load":3}`, 400, "load"},
		{"no replica", clusterToken, `{"versions":[{"version_id":1}]}`, 422, "replica"},
		{"invalid version id", clusterToken, `{"replica":"x","versions":[{"version_id":-1}]}`, 422, "version_id"},
		{"negative in flight", clusterToken, `{"replica":"x","instances":[{"id":"i","in_flight":-2}]}`, 422, "negative"},
		{"rollout errors above requests", clusterToken, `{"replica":"x","rollouts":[{"service":"hello","version":1,"requests":2,"errors":3}]}`, 422, "rollouts[0]"},
		{"rollout latency bucket out of range", clusterToken, `{"replica":"x","rollouts":[{"service":"hello","version":1,"requests":2,"latency_buckets":{"9999":1}}]}`, 422, "latency bucket 9999"},
		{"mirror matched above compared", clusterToken, `{"replica":"x","mirrors":[{"service":"hello","mirror":{"version":2,"percent":10},"version_id":2,"pairs":[{"primary":1,"compared":1,"matched":2}]}]}`, 422, "mirrors[0]: pairs[0]: matched 2"},
		{"mirror latency bucket out of range", clusterToken, `{"replica":"x","mirrors":[{"service":"hello","mirror":{"version":2,"percent":10},"version_id":2,"pairs":[{"primary":1,"compared":1,"primary_latency_buckets":{"10":1},"mirror_latency_buckets":{"9999":1}}]}]}`, 422, "latency bucket 9999"},
		{"mirror state without a service", clusterToken, `{"replica":"x","mirrors":[{"mirror":{"version":2,"percent":10},"version_id":2}]}`, 422, "mirrors[0]: service is empty"},
		{"no token", "", `{"replica":"x"}`, 401, "Authorization"},
		{"wrong token", "not-the-token-0123456789", `{"replica":"x"}`, 401, "wrong"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := post(lead, tc.token, tc.body)
			if status != tc.status || !strings.Contains(body, tc.says) {
				t.Fatalf("got %d %s, want %d saying %q", status, body, tc.status, tc.says)
			}
		})
	}
	status, body := post(lead, clusterToken, `{"replica":"x","versions":[{"version_id":424242,"waiting":3},{"version_id":1,"in_flight":1}]}`)
	var reply core.LoadReply
	if status != 200 || json.Unmarshal([]byte(body), &reply) != nil || len(reply.IgnoredVersions) != 1 || reply.IgnoredVersions[0] != 424242 {
		t.Fatalf("a report naming an unknown version: %d %s, want 200 listing it as ignored", status, body)
	}
	if reply.Leader != lead.name {
		t.Fatalf("the reply names leader %q, want %s", reply.Leader, lead.name)
	}
	if status, body := post(lead, clusterToken, `{"replica":"`+lead.name+`"}`); status != 409 || !strings.Contains(body, "--replica-id") {
		t.Fatalf("a report under the leader's own replica ID: %d %s, want 409", status, body)
	}
	if status, body := post(followers[0], clusterToken, `{"replica":"x"}`); status != 409 || !strings.Contains(body, "does not lead") {
		t.Fatalf("a report to a follower: %d %s, want 409", status, body)
	}
	if n := rt.Attempts(); n != 0 {
		t.Fatalf("an unknown version's waiting requests started %d instances", n)
	}
}

// TestReplicasRolloutJudgesEveryReplica: a rollout's checks count the
// requests of every replica, not only the leader's: all traffic goes
// through a follower, and the version that answers 500 to every request
// fails its first check with the follower's numbers. On the leader's own
// numbers alone (none) the step would wait and then pause.
func TestReplicasRolloutJudgesEveryReplica(t *testing.T) {
	t.Parallel()
	rt := fake.New(fake.Config{Images: map[string]string{"hello:1": "sha256:hello1"}, Shared: true,
		Handler: func(spec runtime.InstanceSpec) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if spec.VersionNumber == 2 && r.URL.Path != "/healthz" {
					http.Error(w, "broken", http.StatusInternalServerError)
					return
				}
				_, _ = io.WriteString(w, "Hello\n")
			})
		}})
	lead, follower := twoVersionsOnTwoReplicas(t, rt)
	ctx := t.Context()
	noRatio := 0.0
	if _, err := lead.api.StartRollout(ctx, "hello", core.RolloutSpec{To: 2, Steps: []int{50, 100},
		Interval: core.Duration(time.Second), MinRequests: 20, MaxP99Ratio: &noRatio}); err != nil {
		t.Fatal(err)
	}
	// Load through the follower only, bounded: at most 20 s, 4,000 requests.
	load, stop := context.WithCancel(ctx)
	defer stop()
	var sent atomic.Int64
	var codesMu sync.Mutex
	codes := map[int]int{}
	defer func() { codesMu.Lock(); t.Logf("answers through the follower by status: %v", codes); codesMu.Unlock() }()
	go func() {
		deadline := time.Now().Add(20 * time.Second)
		for load.Err() == nil && time.Now().Before(deadline) && sent.Add(1) <= 4000 {
			code, _, _ := hit(load, follower, "/")
			codesMu.Lock()
			codes[code]++
			codesMu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	var ro core.Rollout
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var err error
		if ro, err = lead.api.GetRollout(ctx, "hello"); err != nil {
			t.Fatal(err)
		}
		if !ro.State.Active() || time.Now().After(deadline) {
			break
		}
	}
	stop()
	if ro.State != core.RolloutFailed || ro.Check == nil || ro.Check.Requests < 20 || ro.Check.Errors == 0 {
		t.Fatalf("rollout %s (%s), last check %+v; want failed on the follower's requests", ro.State, ro.Reason, ro.Check)
	}
	t.Logf("failed on the follower's numbers: %s (%d requests sent through the follower)", ro.Check.Detail, sent.Load())
	if tr, err := lead.api.GetTraffic(ctx, "hello"); err != nil || tr.PercentOf(1) != 100 {
		t.Fatalf("traffic after the failed rollout: %+v %v, want version 1 at 100%%", tr.Weights, err)
	}
}

// TestReplicasMirrorReportCoversEveryReplica: requests mirrored through a
// follower count in the report read on the leader and on the follower
// (which asks the leader); requests through the leader add up with them.
// A follower that cannot reach the leader answers its own numbers, marked
// partial.
func TestReplicasMirrorReportCoversEveryReplica(t *testing.T) {
	t.Parallel()
	rt := fake.New(fake.Config{Images: map[string]string{"hello:1": "sha256:hello1"}, Shared: true,
		Handler: func(spec runtime.InstanceSpec) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = fmt.Fprintf(w, "Hello from v%d\n", spec.VersionNumber)
			})
		}})
	lead, follower := twoVersionsOnTwoReplicas(t, rt)
	ctx := t.Context()
	if _, err := lead.api.SetMirror(ctx, "hello", core.Mirror{Version: 2, Percent: 100}); err != nil {
		t.Fatal(err)
	}
	// Wait for the follower's feed to bring the setting.
	waitReport := func(r *replica, what string, ok func(core.MirrorReport) bool) core.MirrorReport {
		t.Helper()
		var rep core.MirrorReport
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			var err error
			if rep, err = r.api.MirrorReport(ctx, "hello"); err != nil {
				t.Fatalf("report on %s: %v", r.name, err)
			}
			if ok(rep) {
				return rep
			}
			if time.Now().After(deadline) {
				t.Fatalf("report on %s: %+v; want %s", r.name, rep, what)
			}
		}
	}
	compared := func(rep core.MirrorReport) int64 {
		if len(rep.Pairs) != 1 {
			return -1
		}
		return rep.Pairs[0].Compared
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if tr, err := follower.api.GetTraffic(ctx, "hello"); err == nil && tr.Mirror != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the follower never saw the mirror setting")
		}
	}
	time.Sleep(1500 * time.Millisecond) // the follower's router applies its feed within a second
	for i := range 20 {
		if code, body, err := hit(ctx, follower, "/"); err != nil || code != 200 || body != "Hello from v1\n" {
			t.Fatalf("request %d through the follower: %d %q %v, want v1's answer", i, code, body, err)
		}
	}
	for _, r := range []*replica{lead, follower} {
		rep := waitReport(r, "20 compared over 2 replicas", func(rep core.MirrorReport) bool { return rep.Replicas == 2 && compared(rep) == 20 })
		p := rep.Pairs[0]
		if rep.Partial || rep.Replica != r.name || p.Primary != 1 || p.Mirror != 2 || p.Mismatches[core.MismatchBody] != 20 ||
			p.MirrorLatency.Count != 20 || len(p.Examples) != core.MaxMirrorExamples {
			t.Fatalf("report on %s: %+v, pair %+v; want 20 body mismatches, not partial, from %s", r.name, rep, p, r.name)
		}
	}
	for range 5 {
		if code, _, err := hit(ctx, lead, "/"); err != nil || code != 200 {
			t.Fatalf("request through the leader: %d %v", code, err)
		}
	}
	waitReport(follower, "25 compared (the leader's 5 too)", func(rep core.MirrorReport) bool { return rep.Replicas == 2 && compared(rep) == 25 })

	// Unable to find the leader, the follower answers its own 20.
	follower.store.cutLookup.Store(true)
	rep := waitReport(follower, "partial, its own 20", func(rep core.MirrorReport) bool { return rep.Partial })
	if rep.Replicas != 1 || compared(rep) != 20 {
		t.Fatalf("partial report on the follower: %d replicas, %d compared; want 1 and 20", rep.Replicas, compared(rep))
	}
	// The leader drops the follower's numbers once its reports stop.
	follower.stop()
	waitReport(lead, "its own 5 once the follower's reports expired", func(rep core.MirrorReport) bool { return rep.Replicas == 1 && compared(rep) == 5 })
}
