//go:build chaos

package chaos

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/apiclient"
	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime/docker/dockertest"
)

const (
	recorderImage = "wisp-recorder:chaos"
	asyncService  = "nolost"
	asyncCalls    = 10000
	asyncConc     = 50
)

// seenAttempt is one attempt the recorder (testdata/recorder) served.
type seenAttempt struct {
	ID      string `json:"id"`
	Attempt int    `json:"attempt"`
	Status  int    `json:"status"`
}

type seenLog struct {
	Boot  string        `json:"boot"`
	Count int           `json:"count"`
	Seen  []seenAttempt `json:"seen"`
}

// failsFirst is the recorder's FailsFirst: one call in ten, by a hash of
// its ID, gets 503 on its first attempt.
func failsFirst(id string) bool {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return h.Sum32()%10 == 0
}

// submission is what a client holds for one call it submitted.
type submission struct {
	id        string
	tries     int  // requests sent for it (more than 1: retried with the same Idempotency-Key)
	duplicate bool // the 202 that gave the ID said Wisp-Duplicate
}

// TestChaosAsync is "nothing lost" (make chaos-async): 10,000 async calls
// submitted at concurrency 50 through the real binary's router while the
// daemon is killed with SIGKILL twice and restarted on the same data dir;
// afterwards every call the clients got an ID for must have succeeded (or
// be dead with its attempts recorded), the function must have seen each,
// and no call may have run again after the attempt that succeeded.
func TestChaosAsync(t *testing.T) {
	dockertest.Skip(t)
	began := time.Now()
	ctx := t.Context()
	d, _ := startChaos(t, "./testdata/recorder", recorderImage)
	c := apiclient.New(d.admin, d.token)
	one, conc, attempts := 1, 20, 5
	idle, minB, maxB := core.Duration(time.Hour), core.Duration(50*time.Millisecond), core.Duration(time.Second)
	if _, err := c.CreateService(ctx, asyncService, core.PolicyPatch{MinInstances: &one, MaxInstances: &one,
		IdleTimeout: &idle, PauseAfter: new(core.Duration), AsyncConcurrency: &conc, MaxAttempts: &attempts,
		MinBackoff: &minB, MaxBackoff: &maxB}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateVersion(ctx, asyncService, core.VersionSpec{Image: recorderImage, Env: []string{"FAIL_FIRST=1"},
		Timeout: core.Duration(10 * time.Second), MaxConcurrency: 100}); err != nil {
		t.Fatal(err)
	}
	instance := waitReady(t, c)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: asyncConc}, Timeout: 30 * time.Second}
	boot := seen(t, hc, d, true).Boot

	// The submissions: 50 clients; a connection error or a 5xx (the daemon
	// is down or starting) is retried with the same Idempotency-Key.
	subs := make([]submission, asyncCalls)
	var next, done atomic.Int64
	var connErrs, status5xx, status404, other atomic.Int64
	var wg sync.WaitGroup
	submitStart := time.Now()
	for range asyncConc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= asyncCalls {
					return
				}
				key := fmt.Sprintf("nolost-%d", i)
				giveUp := time.Now().Add(2 * time.Minute)
				for subs[i].id == "" && time.Now().Before(giveUp) && ctx.Err() == nil {
					subs[i].tries++
					status, id, dup, err := submitAsync(hc, d, i, key)
					switch {
					case err != nil:
						connErrs.Add(1)
					case status == http.StatusAccepted:
						subs[i].id, subs[i].duplicate = id, dup
						continue
					case status == http.StatusNotFound:
						// Just after a restart, before the feed has told the
						// async calls which services exist.
						status404.Add(1)
					case status >= 500:
						status5xx.Add(1)
					default:
						other.Add(1)
						t.Errorf("submission %d: status %d", i, status)
						subs[i].tries = -1
					}
					if subs[i].tries < 0 {
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
				done.Add(1)
			}
		}()
	}
	// The faults: SIGKILL at 30% and 65% of the submissions, restart at once.
	var killTimes []time.Duration
	for _, at := range []int64{asyncCalls * 30 / 100, asyncCalls * 65 / 100} {
		for done.Load() < at {
			time.Sleep(5 * time.Millisecond)
		}
		d.kill9()
		killTimes = append(killTimes, time.Since(submitStart))
		d.start()
	}
	wg.Wait()
	submitTook := time.Since(submitStart)

	ids := map[string]int{}
	var noID, retried, dups int
	for i, s := range subs {
		switch {
		case s.id == "":
			noID++
			if noID <= 5 {
				t.Errorf("submission %d got no 202 within 2 minutes (%d tries)", i, s.tries)
			}
			continue
		case s.tries > 1:
			retried++
		}
		if s.duplicate {
			dups++
		}
		if j, ok := ids[s.id]; ok {
			t.Errorf("submissions %d and %d got the same call ID %s", j, i, s.id)
		}
		ids[s.id] = i
	}

	// Wait until every call is done: first until the function has seen
	// as many attempts as the calls need, then each record; bounded by 5
	// minutes, and by 90 s without progress.
	waitStart := time.Now()
	deadline := waitStart.Add(5 * time.Minute)
	records := map[string]core.Call{}
	pending := make([]string, 0, len(ids))
	for id := range ids {
		pending = append(pending, id)
	}
	lastProgress, lastCount := time.Now(), 0
	for len(pending) > 0 && time.Now().Before(deadline) && time.Since(lastProgress) < 90*time.Second {
		if n := seen(t, hc, d, true).Count; n < len(ids) {
			if n > lastCount {
				lastProgress, lastCount = time.Now(), n
			}
			time.Sleep(time.Second)
			continue
		}
		got := getCalls(t, hc, d, pending)
		var still []string
		for _, id := range pending {
			call, ok := got[id]
			if ok {
				records[id] = call
			}
			if !ok || !call.Done() {
				still = append(still, id)
			}
		}
		if len(still) < len(pending) {
			lastProgress = time.Now()
		}
		pending = still
		if len(pending) > 0 {
			time.Sleep(time.Second)
		}
	}
	waitTook := time.Since(waitStart)
	log := seen(t, hc, d, false)
	ins, err := c.Instances(ctx, asyncService)
	if err != nil {
		t.Fatal(err)
	}

	// Tally.
	if log.Boot != boot {
		t.Fatalf("the function's process was restarted (boot %s, then %s): its record of what it served is gone", boot, log.Boot)
	}
	if len(ins) != 1 || ins[0].ID != instance {
		t.Errorf("instances after the run: %+v, want only %s (adopted across the restarts)", ins, instance)
	}
	served := map[string][]seenAttempt{}
	for _, a := range log.Seen {
		served[a.ID] = append(served[a.ID], a)
	}
	byState := map[string]int{}
	var unseen, ranAfter, okTwice, servedTwice, notDone, noRecord, unknown, wrongFirst, lost, lostDup int
	var examples []string
	note := func(format string, args ...any) {
		if len(examples) < 12 {
			examples = append(examples, fmt.Sprintf(format, args...))
		}
	}
	for id := range ids {
		call, ok := records[id]
		sub := subs[ids[id]]
		if !ok || !call.Done() {
			lost++
			if sub.duplicate {
				lostDup++
			}
		}
		if !ok {
			noRecord++
			note("call %s: no record (GET /v1/calls answered 404); its 202 came after %d tries, Wisp-Duplicate %v; the function saw it %d times",
				id, sub.tries, sub.duplicate, len(served[id]))
			continue
		}
		byState[call.State]++
		switch {
		case call.State == core.CallSucceeded:
		case call.State == core.CallDead && len(call.Attempts) > 0:
		case !call.Done():
			notDone++
			note("call %s: still %s after %d attempts; its 202 came after %d tries, Wisp-Duplicate %v", id, call.State, len(call.Attempts),
				sub.tries, sub.duplicate)
		default:
			note("call %s: %s (%s)", id, call.State, call.Error)
		}
		runs := served[id]
		if len(runs) == 0 {
			unseen++
			note("call %s (%s): the function never saw it", id, call.State)
		}
		if len(runs) > 1 {
			servedTwice++
		}
		oks := 0
		for _, a := range runs {
			if a.Status == http.StatusOK {
				oks++
			}
			if call.State == core.CallSucceeded && a.Attempt > len(call.Attempts) {
				ranAfter++
				note("call %s: the function saw attempt %d; attempt %d succeeded", id, a.Attempt, len(call.Attempts))
			}
		}
		if oks > 1 {
			okTwice++
		}
		if call.State == core.CallSucceeded && failsFirst(id) && len(call.Attempts) < 2 {
			wrongFirst++
			note("call %s: its first attempt answered 503 but it succeeded after %d attempt", id, len(call.Attempts))
		}
	}
	for id := range served {
		if _, ok := ids[id]; !ok {
			unknown++
		}
	}
	states := make([]string, 0, len(byState))
	for s, n := range byState {
		states = append(states, fmt.Sprintf("%s: %d", s, n))
	}
	sort.Strings(states)
	total := time.Since(began)
	report := fmt.Sprintf(`
chaos-async: %d async calls at concurrency %d, the daemon killed -9 at %v and restarted
  submitted (got a 202 and an ID): %d in %s (%.0f/s, kills and restarts included)
  submissions retried with the same Idempotency-Key: %d (%d answered Wisp-Duplicate)
    failed tries: %d connection errors, %d 5xx, %d 404 (service not known yet), %d other
  no ID after 2 minutes:           %d
  calls by state:                  %s (waited %s for them to finish)
  not done:                        %d; no record: %d (of these %d, %d got their ID from a Wisp-Duplicate 202)
  never seen by the function:      %d
  run again after their success:   %d
  served more than once:           %d (by design: ~10%% fail their first attempt)
  answered 200 more than once:     %d (served twice: an attempt the daemon died under)
  run by the function, no client holds its ID: %d
  attempts the function served:    %d
  the whole test took:             %s
  the daemon's log:                %s
`, asyncCalls, asyncConc, roundAll(killTimes), len(ids), submitTook.Round(time.Millisecond), float64(len(ids))/submitTook.Seconds(),
		retried, dups, connErrs.Load(), status5xx.Load(), status404.Load(), other.Load(), noID,
		strings.Join(states, ", "), waitTook.Round(time.Millisecond), notDone, noRecord, lost, lostDup, unseen, ranAfter, servedTwice, okTwice,
		unknown, len(log.Seen), total.Round(time.Second), d.log.Name())
	fmt.Print(report)
	t.Log(report)
	for _, e := range examples {
		t.Log(e)
	}
	if notDone > 0 || noRecord > 0 {
		t.Errorf("%d calls not done and %d without a record after %s", notDone, noRecord, waitTook.Round(time.Second))
	}
	if n := byState[core.CallFailed]; n > 0 {
		t.Errorf("%d calls failed; the function never answers 4xx", n)
	}
	if unseen > 0 {
		t.Errorf("%d calls were never seen by the function", unseen)
	}
	if ranAfter > 0 {
		t.Errorf("%d calls ran again after the attempt that succeeded", ranAfter)
	}
	if wrongFirst > 0 {
		t.Errorf("%d calls succeeded at once though their first attempt answered 503", wrongFirst)
	}
	if err := d.stop(); err != nil {
		t.Errorf("clean shutdown: %v", err)
	}
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(100 * time.Millisecond)
	}
	return out
}

// submitAsync sends submission i once.
func submitAsync(hc *http.Client, d *daemon, i int, key string) (status int, id string, dup bool, err error) {
	req, err := http.NewRequest(http.MethodPost, "http://"+d.router+"/async/"+asyncService+"/job?n="+strconv.Itoa(i),
		bytes.NewReader([]byte(`{"n":`+strconv.Itoa(i)+`}`)))
	if err != nil {
		return 0, "", false, err
	}
	req.Header.Set("Idempotency-Key", key)
	req.Header.Set("Content-Type", "application/json")
	res, err := hc.Do(req)
	if err != nil {
		return 0, "", false, err
	}
	_, err = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	if err != nil {
		return 0, "", false, err
	}
	return res.StatusCode, res.Header.Get("Wisp-Call-Id"), res.Header.Get("Wisp-Duplicate") == "true", nil
}

// getCalls reads the records of ids, 16 at a time; a call without a
// record is left out.
func getCalls(t *testing.T, hc *http.Client, d *daemon, ids []string) map[string]core.Call {
	t.Helper()
	out := make(map[string]core.Call, len(ids))
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	work := make(chan string)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				call, ok, err := getCall(t, hc, d, id)
				mu.Lock()
				if ok {
					out[id] = call
				}
				if err != nil && firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	return out
}

// getCall reads a call's record; ok is false on 404.
func getCall(t *testing.T, hc *http.Client, d *daemon, id string) (call core.Call, ok bool, err error) {
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+d.admin+"/v1/calls/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+d.token)
	res, err := hc.Do(req)
	if err != nil {
		return call, false, fmt.Errorf("get call %s: %w", id, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode == http.StatusNotFound {
		return call, false, nil
	}
	if res.StatusCode != http.StatusOK {
		return call, false, fmt.Errorf("get call %s: %d %s", id, res.StatusCode, b)
	}
	if err := json.Unmarshal(b, &call); err != nil {
		return call, false, fmt.Errorf("get call %s: %w", id, err)
	}
	return call, true, nil
}

// seen reads the function's record through the router (only its count
// when countOnly).
func seen(t *testing.T, hc *http.Client, d *daemon, countOnly bool) seenLog {
	t.Helper()
	u := "http://" + d.router + "/seen"
	if countOnly {
		u += "?count=1"
	}
	var last error
	for range 50 {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
		req.Host = asyncService + ".localhost"
		res, err := hc.Do(req)
		if err == nil {
			var l seenLog
			err = json.NewDecoder(res.Body).Decode(&l)
			_ = res.Body.Close()
			if err == nil && res.StatusCode == http.StatusOK {
				return l
			}
			if err == nil {
				err = fmt.Errorf("status %d", res.StatusCode)
			}
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("GET /seen from the function: %v", last)
	return seenLog{}
}

// waitReady waits for the service's one instance and returns its ID.
func waitReady(t *testing.T, c *apiclient.Client) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ins, err := c.Instances(t.Context(), asyncService)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range ins {
			if in.State == core.InstanceReady {
				return in.ID
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no instance of %s ready within a minute: %+v", asyncService, ins)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
