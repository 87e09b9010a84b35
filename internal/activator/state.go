package activator

import (
	"fmt"

	"github.com/wisp-run/wisp/internal/core"
)

// State is where an instance is in its life. Every instance the activator
// owns has exactly one, changed only by (*Activator).move, which checks it
// against transitions. The values are the ones reported in the API.
type State string

// The states. Queued and creating have no container running yet; spare has
// a container that never started; gone is terminal (the instance has left
// the registry).
const (
	Queued   State = core.InstanceQueued   // a scale-up start waiting for a start slot
	Creating State = "creating"            // a spare being created
	Spare    State = "spare"               // created, never started: the next cold start starts it
	Starting State = core.InstanceStarting // being started and probed (or adopted and probed)
	Ready    State = core.InstanceReady    // takes requests
	Suspect  State = core.InstanceSuspect  // failed a request: gets none until a probe passes
	Draining State = core.InstanceDraining // chosen to go: no new requests, stopped when idle
	Pausing  State = core.InstancePausing  // being frozen
	Paused   State = core.InstancePaused   // frozen; a request thaws it
	Waking   State = core.InstanceWaking   // being thawed
	Stopping State = core.InstanceStopping // the runtime is stopping and removing it
	Gone     State = "gone"                // removed; no longer in the registry
)

// transitions is the whole state machine: the states each state may move
// to. Anything else is a bug, refused by move.
var transitions = map[State][]State{
	Queued:   {Starting, Gone},                               // got a start slot; dropped before it began
	Creating: {Spare, Stopping},                              // created; failed, or not wanted any more
	Spare:    {Starting, Stopping},                           // a cold start takes it; removed
	Starting: {Ready, Stopping},                              // probe passed; failed or cancelled
	Ready:    {Suspect, Draining, Pausing, Paused, Stopping}, // Paused: frozen by hand
	Suspect:  {Ready, Paused, Draining, Stopping},            // recovered; frozen by hand; scaled down; not recovered
	Draining: {Stopping},                                     // its last request ended, or the grace did
	Pausing:  {Paused, Ready, Stopping},                      // Ready: the pause failed
	Paused:   {Waking, Ready, Stopping},                      // Ready: thawed by hand
	Waking:   {Ready, Stopping},                              // thawed; failed to thaw
	Stopping: {Gone},                                         // the runtime removed it
}

// entryStates are the states an instance may enter the registry in.
var entryStates = map[State]bool{
	Queued:   true, // a scale-up
	Creating: true, // a spare
	Starting: true, // a cold start, or an adopted running instance
	Spare:    true, // an adopted created container
	Paused:   true, // an adopted paused instance
	Stopping: true, // an adopted container that is not wanted
}

// canMove reports whether from → to is a transition of the state machine.
func canMove(from, to State) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// errTransition reports a move the state machine does not allow.
type errTransition struct {
	id       string
	from, to State
}

func (e errTransition) Error() string {
	return fmt.Sprintf("instance %s: no transition from %s to %s", e.id, e.from, e.to)
}

// Capacity classes, derived from the state (never stored).

// serves reports whether an instance in s may be handed requests.
func (s State) serves() bool { return s == Ready }

// counts reports whether an instance in s counts as one of the version's
// instances, for the autoscaler and for min_instances: it runs, or will
// soon. Draining and stopping instances are leaving; spares are not
// capacity.
func (s State) counts() bool {
	switch s {
	case Queued, Starting, Ready, Suspect, Pausing, Paused, Waking:
		return true
	}
	return false
}

// visible reports whether an instance in s is listed by Instances.
func (s State) visible() bool {
	switch s {
	case Creating, Spare, Gone:
		return false
	}
	return true
}
