// Package rollout moves a service's traffic to a new version step by step
// and judges the version at the end of every step from the router's own
// numbers (docs/rollouts.md).
//
// The Recorder counts the requests of the services that have an active
// rollout, per version: requests, 5xx answers and a latency histogram, in
// memory. The Controller runs on the leader only: it reads the active
// rollouts from the store, takes a snapshot of the Recorder when a step
// begins and another when its interval ends, and Judge decides from the
// difference whether the step passes, fails or waits for more requests.
// Every transition is one store.UpdateRollout, so a rollout and the
// traffic entry it writes change together or not at all.
package rollout
