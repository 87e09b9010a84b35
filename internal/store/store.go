// Package store defines the storage port of Wisp's control plane: services,
// their immutable versions and their append-only traffic history.
//
// Every implementation (sqlite, postgres) passes the conformance suite in
// storetest, which is the executable form of the contract written here.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/wisp-run/wisp/internal/core"
)

// Change is one committed change to a service's stored state: the service was
// created, deleted, its policy changed, a version was created or deleted, or
// its traffic changed. Build records are not changes.
type Change struct {
	Revision int64  // strictly increasing across all services
	Service  string // the service that changed (it may no longer exist)
}

// RolloutUpdate decides a rollout's next state from the rollout, the
// current traffic entry and the entry before the rollout; a non-nil traffic
// is appended as the new current entry. See Store.UpdateRollout.
type RolloutUpdate func(r core.Rollout, cur core.TrafficEntry, before *core.TrafficEntry) (core.Rollout, *core.Traffic, error)

// ErrCompacted means the changes after the given revision were pruned; the
// caller must resync with ServiceStates.
var ErrCompacted = errors.New("store: changes compacted; resync")

// Store keeps services, versions and traffic history durably.
//
// Error contract: methods return errors that wrap a core kind, so callers use
// errors.Is: core.ErrNotFound when a named service or version does not exist,
// core.ErrAlreadyExists for a duplicate service name, core.ErrInvalid for
// input that breaks a core rule (checked inside the same transaction as the
// write, so concurrent writers cannot slip past it), core.ErrConflict when the
// current state forbids the change, core.ErrPreconditionFailed when the
// condition of a conditional write (ifEntry) does not hold. Any other error
// is an I/O failure. A failed call changes nothing.
//
// Change feed: every call that changes a service's stored state (create or
// delete a service, update its policy, create, deploy or delete a version,
// set or roll back its traffic) records exactly one Change in the same
// transaction, so a change is never lost and never announced before it is
// committed; watchers are woken after the commit. A failed call records
// none. Revisions become visible in order: once a reader has seen revision
// r, no change with a revision of r or less appears later. The log is
// pruned to a bounded number of recent changes; a reader behind the pruned
// horizon gets ErrCompacted and resyncs with ServiceStates.
//
// Store does not fill core.Service.Host or URL: those depend on the daemon's
// domain and address, not on stored data.
type Store interface {
	// CreateService stores a new service with s.Name and s.Policy, and returns
	// it with ID and times set. ErrAlreadyExists if the name is taken.
	CreateService(ctx context.Context, s core.Service) (core.Service, error)
	// GetService returns the named service, or ErrNotFound.
	GetService(ctx context.Context, name string) (core.Service, error)
	// ListServices returns all services ordered by name.
	ListServices(ctx context.Context) ([]core.Service, error)
	// UpdatePolicy applies patch to the service's scaling policy, validates
	// the result (ErrInvalid) and stores it. It never creates a version.
	UpdatePolicy(ctx context.Context, name string, patch core.PolicyPatch) (core.Service, error)
	// DeleteService removes the service with its versions and traffic history.
	// ErrNotFound if it does not exist.
	DeleteService(ctx context.Context, name string) error

	// CreateVersion stores a new version of v.Service from v.VersionSpec and
	// v.ImageID, assigning the next per-service number (never reused) and a
	// global ID. If the service has no traffic yet, the same transaction
	// appends an entry that gives the new version 100%; otherwise traffic is
	// untouched. ErrNotFound if the service does not exist.
	CreateVersion(ctx context.Context, v core.Version) (core.Version, error)
	// DeployVersion creates v like CreateVersion (v.Source is kept) and, in
	// the same transaction, gives it percent of the traffic with
	// core.Traffic.Shift and message. percent 0 leaves traffic as it is,
	// except that a service's first version gets 100% as with
	// CreateVersion. Either both happen or neither does.
	DeployVersion(ctx context.Context, v core.Version, percent int, message string) (core.Version, error)
	// GetVersion returns version number of service, or ErrNotFound.
	GetVersion(ctx context.Context, service string, number int) (core.Version, error)
	// GetVersionByID returns the version with the global id, or ErrNotFound.
	GetVersionByID(ctx context.Context, id int64) (core.Version, error)
	// ListVersions returns the service's versions by number. ErrNotFound if
	// the service does not exist.
	ListVersions(ctx context.Context, service string) ([]core.Version, error)
	// DeleteVersion removes a version that carries no traffic. ErrConflict if
	// the current traffic gives it more than 0% or a tag names it.
	DeleteVersion(ctx context.Context, service string, number int) error

	// SetTraffic validates t against the service's versions (ErrInvalid) and
	// appends it to the history as the new current entry. ifEntry makes the
	// write conditional, checked in the write's transaction: 0 is no
	// condition, an entry ID requires that it is the current entry, and
	// core.AnyEntry that the service has a current entry; otherwise
	// ErrPreconditionFailed. ErrNotFound if the service does not exist.
	SetTraffic(ctx context.Context, service string, t core.Traffic, ifEntry int64) (core.TrafficEntry, error)
	// GetTraffic returns the current (newest) entry. ErrNotFound if the
	// service does not exist or has no traffic yet.
	GetTraffic(ctx context.Context, service string) (core.TrafficEntry, error)
	// TrafficHistory returns every entry, oldest first.
	TrafficHistory(ctx context.Context, service string) ([]core.TrafficEntry, error)
	// RollbackTraffic appends a copy of an earlier entry as the new current
	// entry: entry toID, or with toID 0 the entry before the current one.
	// ErrConflict if there is no earlier entry or it names a deleted version;
	// ErrNotFound if toID is not an entry of this service, or the service
	// has no traffic yet. ifEntry is a condition as for SetTraffic, checked
	// before the target is looked up.
	RollbackTraffic(ctx context.Context, service string, toID, ifEntry int64) (core.TrafficEntry, error)

	// Revision returns the revision of the newest committed change, 0 if
	// none.
	Revision(ctx context.Context) (int64, error)
	// ChangesSince returns the committed changes with Revision > after,
	// oldest first, at most limit (ErrInvalid if limit < 1). ErrCompacted if
	// changes after `after` were pruned.
	ChangesSince(ctx context.Context, after int64, limit int) ([]Change, error)
	// Watch returns a channel that receives a value after commits of changes
	// (coalesced: one value may stand for many commits; it has a buffer of 1
	// and never blocks a writer). It is closed when ctx is done or the store
	// closes. Readers then call ChangesSince. Commits made by other
	// processes on the same database wake it too (SQLite polls the
	// revision; Postgres uses LISTEN/NOTIFY).
	Watch(ctx context.Context) <-chan struct{}
	// ServiceState returns one service with its versions and current
	// traffic, read in one read transaction. ErrNotFound if the service does
	// not exist.
	ServiceState(ctx context.Context, name string) (core.ServiceState, error)
	// ServiceStates returns every service's state, ordered by name, and the
	// revision they reflect, read in one read transaction with a constant
	// number of queries (not one per service).
	ServiceStates(ctx context.Context) ([]core.ServiceState, int64, error)

	// CreateBuild stores a new build record from b (service, status,
	// runtime, promote, source) and returns it with ID and CreatedAt set.
	CreateBuild(ctx context.Context, b core.Build) (core.Build, error)
	// UpdateBuild stores every mutable field of b (status, image, image ID,
	// reused, source digest, version, error, start and finish times).
	// ErrNotFound if there is no build b.ID; ErrConflict if the stored
	// build has finished already (a finished build never changes).
	UpdateBuild(ctx context.Context, b core.Build) error
	// GetBuild returns build id, or ErrNotFound.
	GetBuild(ctx context.Context, id int64) (core.Build, error)
	// ListBuilds returns the newest builds first, at most limit of them,
	// of service or, with "", of every service.
	ListBuilds(ctx context.Context, service string, limit int) ([]core.Build, error)
	// SetBuildLog replaces the kept output of build id. ErrNotFound if
	// there is no such build.
	SetBuildLog(ctx context.Context, id int64, log []byte) error
	// BuildLog returns the kept output of build id, or ErrNotFound.
	BuildLog(ctx context.Context, id int64) ([]byte, error)
	// FailUnfinishedBuilds marks every queued or running build failed with
	// message (a daemon that stopped mid-build), and returns how many.
	FailUnfinishedBuilds(ctx context.Context, message string) (int, error)

	// CreateRollout starts a rollout of service (core.NewRollout checks
	// it against the current entry, the versions and the service's active
	// rollout, ErrInvalid or ErrConflict) and, in the same transaction,
	// appends its first step's entry (Rollout.StepTraffic; one change).
	// It returns the rollout with its ID and LastEntry set. ErrNotFound if
	// the service does not exist.
	CreateRollout(ctx context.Context, service string, spec core.RolloutSpec) (core.Rollout, error)
	// GetRollout returns the service's newest rollout, or ErrNotFound
	// (also when the service does not exist).
	GetRollout(ctx context.Context, service string) (core.Rollout, error)
	// ActiveRollouts returns every running or paused rollout, by ID.
	ActiveRollouts(ctx context.Context) ([]core.Rollout, error)
	// UpdateRollout changes the service's newest rollout in one
	// transaction: it reads the rollout, the current traffic entry and
	// the entry before the rollout (nil when it was deleted with its
	// service's history, which cannot happen while the service exists),
	// calls fn and stores the rollout fn returns (its ID, service, spec,
	// Before and CreatedAt are kept; UpdatedAt is set). When fn also
	// returns a traffic, it is checked like SetTraffic's (ErrInvalid) and
	// appended as the new current entry (one change), and LastEntry
	// becomes its ID; a rollout-only update records no change. fn may be
	// called more than once (a store may retry a transaction) and must
	// depend on its arguments only; its error is returned as it is, and
	// nothing is written. ErrNotFound if the service has no rollout.
	UpdateRollout(ctx context.Context, service string, fn RolloutUpdate) (core.Rollout, error)

	// Close releases the store. Calls after Close fail.
	Close() error

	// AcquireLease takes the lease name for holder, or renews it when
	// holder has it, for ttl on the store's clock, and reports whether
	// holder holds it after the call (false: another holder's lease has not
	// expired). Leases elect one leader among the processes sharing the
	// store (package leader); they are not changes.
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	// ReleaseLease gives the lease up if holder has it.
	ReleaseLease(ctx context.Context, name, holder string) error
	// LeaseHolder returns the holder of lease name, or "" when nobody
	// holds it (never taken, released, or expired on the store's clock).
	// Replicas find their leader with it: the holder identity carries the
	// leader's admin URL.
	LeaseHolder(ctx context.Context, name string) (string, error)
}
