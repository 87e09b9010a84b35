// Package async runs what Wisp does outside a request that waits for its
// answer: async calls (a request handed off with Prefer: respond-async and
// delivered later, with retries, a status and a result by ID), event
// triggers (a service called for each CloudEvent on a subject) and cron
// schedules. Everything is kept in the queue port (NATS JetStream), so it
// survives restarts and is shared by every replica.
//
// A call's life: Submit stores its record (table calls, key
// <service>.<id>) and then enqueues its ID on the service's work queue, and
// only then answers 202. A dispatcher per service takes IDs off the queue,
// at most async_concurrency at a time per replica, and sends each call
// through the router like any request (traffic split, tags,
// max_concurrency, cold starts). A 2xx or 3xx answer makes it succeeded, a
// 4xx other than 408 and 429 failed; anything else is retried with
// exponential backoff and full jitter (honouring Retry-After) until
// max_attempts or max_age, when it is dead. docs/async.md has the rest.
package async
