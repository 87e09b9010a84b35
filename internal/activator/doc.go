// Package activator owns the instances of every version: it starts them on
// demand (scale from zero), hands requests an instance, scales them for the
// autoscaler, pauses and removes idle ones (the reaper), replaces broken
// ones, and keeps its view in step with the runtime (the reconciler).
//
// The parts, each with one job, around one registry of instances:
//   - state.go: an instance's State and the transition table, the only
//     way a state changes (move); see docs/architecture.md for the picture;
//   - activator.go: the registry (by version, by ID), add, move, retire,
//     and the stop that every removal goes through;
//   - acquire.go: the gate: Acquire hands out capacity, provide makes some
//     come (thaw, start) for requests that found none, waiters are woken by
//     closing a channel on every change; the picker policy (power of two
//     choices) is passed in;
//   - start.go: the starter: coalesced on-demand starts, the scale-up queue
//     bounded by start slots, the backoff of failing starts, spares, pause
//     and wake;
//   - health.go: suspect instances and liveness probes;
//   - lifecycle.go: Run (reaper, events, re-list), Scale with draining,
//     Reconcile (adoption) and Shutdown; sync.go: what the store says exists;
//   - replicas.go: the roles over a runtime several replicas share: the
//     leader manages the instances and takes the others' load reports; a
//     follower mirrors the instances and never calls the runtime to change
//     one.
//
// "Never stop an instance with a request in flight" holds because the
// in-flight check and the state change happen under the version's lock that
// Acquire takes to hand an instance out. A start never holds a lock that
// another version or service needs.
//
// Cold starts are coalesced per version: concurrent requests for a version
// with no instance share one start, whose work is cancelled only when no
// request waits for it any more. Starts that fail back off (1 s doubling to
// 30 s), and requests meanwhile get 503 at once with the last failure.
//
// Scale to zero, exactly: an instance with no request in flight and none
// finished for the policy's pause_after is paused (frozen); the next request
// thaws it. One with none for idle_timeout is stopped and removed, unless that
// would leave its version with fewer than min_instances, or fewer than its
// standbys: a version that gets traffic keeps policy.standby instances
// paused rather than none (paused at idle_timeout if not before), and the
// reaper starts them, to be paused once ready, for such a version with
// fewer; only where instances can be paused and no other replica shares
// them (otherwise standby is ignored, logged once per version). The reaper looks
// every ReapInterval, so an idle instance is gone within idle_timeout plus one
// interval (plus the time the container takes to stop).
package activator
