package activator

import (
	"testing"
)

var allStates = []State{Queued, Creating, Spare, Starting, Ready, Suspect, Draining, Pausing, Paused, Waking, Stopping, Gone}

// TestTransitionTable spells out, pair by pair, which moves the state
// machine allows, and checks canMove against it for every pair of states.
func TestTransitionTable(t *testing.T) {
	type edge struct{ from, to State }
	allowed := map[edge]string{
		{Queued, Starting}:   "a scale-up got a start slot",
		{Queued, Gone}:       "a queued start was dropped",
		{Creating, Spare}:    "a spare was created",
		{Creating, Stopping}: "creating a spare failed, or it is no longer wanted",
		{Spare, Starting}:    "a cold start takes the spare",
		{Spare, Stopping}:    "the version lost its traffic or was deleted",
		{Starting, Ready}:    "the readiness probe passed",
		{Starting, Stopping}: "the start failed or was cancelled",
		{Ready, Suspect}:     "a request timed out or broke",
		{Ready, Draining}:    "scaled down while busy",
		{Ready, Pausing}:     "idle for pause_after",
		{Ready, Paused}:      "frozen outside Wisp",
		{Ready, Stopping}:    "idle for idle_timeout, scaled down idle, died, deleted",
		{Suspect, Ready}:     "a health probe passed",
		{Suspect, Paused}:    "frozen outside Wisp",
		{Suspect, Draining}:  "scaled down while busy",
		{Suspect, Stopping}:  "no probe passed within the suspect timeout",
		{Draining, Stopping}: "its last request ended, or the stop grace",
		{Pausing, Paused}:    "the pause is done",
		{Pausing, Ready}:     "the pause failed",
		{Pausing, Stopping}:  "removed while pausing",
		{Paused, Waking}:     "a request thaws it",
		{Paused, Ready}:      "thawed outside Wisp",
		{Paused, Stopping}:   "idle for idle_timeout while paused, or removed",
		{Waking, Ready}:      "thawed",
		{Waking, Stopping}:   "thawing failed",
		{Stopping, Gone}:     "the runtime removed it",
	}
	for _, from := range allStates {
		for _, to := range allStates {
			_, want := allowed[edge{from, to}]
			if got := canMove(from, to); got != want {
				t.Errorf("canMove(%s, %s) = %v, want %v", from, to, got, want)
			}
		}
	}
	for s := range transitions {
		if !contains(allStates, s) {
			t.Errorf("the table has a state %q the test does not know", s)
		}
	}
}

func contains(l []State, s State) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// TestStateClasses: which states count as instances, serve and are listed.
func TestStateClasses(t *testing.T) {
	cases := []struct {
		s                       State
		serves, counts, visible bool
	}{
		{Queued, false, true, true},
		{Creating, false, false, false},
		{Spare, false, false, false},
		{Starting, false, true, true},
		{Ready, true, true, true},
		{Suspect, false, true, true},
		{Draining, false, false, true},
		{Pausing, false, true, true},
		{Paused, false, true, true},
		{Waking, false, true, true},
		{Stopping, false, false, true},
		{Gone, false, false, false},
	}
	if len(cases) != len(allStates) {
		t.Fatalf("%d cases for %d states", len(cases), len(allStates))
	}
	for _, tc := range cases {
		if got := [3]bool{tc.s.serves(), tc.s.counts(), tc.s.visible()}; got != [3]bool{tc.serves, tc.counts, tc.visible} {
			t.Errorf("%s: serves, counts, visible = %v, want %v", tc.s, got, [3]bool{tc.serves, tc.counts, tc.visible})
		}
	}
}

// TestEveryStateLeadsToGone: from every state there is a path to gone, so
// no instance can be stuck in the registry for ever.
func TestEveryStateLeadsToGone(t *testing.T) {
	for _, s := range allStates {
		seen := map[State]bool{s: true}
		queue := []State{s}
		for len(queue) > 0 {
			cur := queue[0]
			queue = queue[1:]
			for _, next := range transitions[cur] {
				if !seen[next] {
					seen[next] = true
					queue = append(queue, next)
				}
			}
		}
		if !seen[Gone] {
			t.Errorf("no path from %s to gone", s)
		}
	}
}
