// Package activator owns the instances of every version: it starts them on
// demand (scale from zero), hands requests an instance, pauses and removes
// idle ones (the reaper), and keeps its view in step with the runtime (the
// reconciler). These parts live together because they change the same
// instance state, and doing that under one lock per version is what makes
// "never stop an instance with a request in flight" true.
//
// Cold starts are coalesced per version: concurrent requests for a version
// with no instance share one start, whose work is cancelled only when no
// request waits for it any more. A start never holds a lock that another
// version or service needs.
//
// Scale to zero, exactly: an instance with no request in flight and none
// finished for the policy's pause_after is paused (frozen); the next request
// thaws it. One with none for idle_timeout is stopped and removed, unless that
// would leave its version with fewer than min_instances. The reaper looks
// every ReapInterval, so an idle instance is gone within idle_timeout plus one
// interval (plus the time the container takes to stop).
package activator
