// Package runtime defines the port through which Wisp runs instances: one
// container (or pod) of one version. Implementations: runtime/docker (the
// Docker Engine), runtime/fake (in memory, for tests). Every implementation
// passes the conformance suite in runtime/runtimetest.
//
// Optional abilities are separate interfaces found by type assertion: a
// runtime that can freeze instances implements Pauser; one that reports
// container events implements Watcher; one that creates instances ahead of
// need implements Precreator; one that knows when an instance is ready (a
// pod's readiness, say) implements ReadinessWaiter; one that builds images
// implements Builder; a builder that can push what it built to a registry
// implements Pusher; one whose instances every Wisp replica sees (a cluster)
// implements Shared.
package runtime

import (
	"context"
	"io"
	"time"
)

// Labels every instance carries, so Wisp can find and adopt its instances.
const (
	LabelManaged       = "wisp.managed" // "true"
	LabelOwner         = "wisp.owner"   // the ID of the Wisp installation that owns it
	LabelService       = "wisp.service"
	LabelVersionID     = "wisp.version-id"
	LabelVersionNumber = "wisp.version"
	LabelInstance      = "wisp.instance"
)

// MaxIDLen bounds instance IDs: an ID is a DNS label (lowercase letters,
// digits and '-', starting with a letter and ending with a letter or digit),
// so it can name a container, a pod and a Kubernetes label value alike.
const MaxIDLen = 63

// InstanceSpec is what it takes to start one instance of a version.
type InstanceSpec struct {
	ID            string // chosen by the caller, unique, at most MaxIDLen (see MaxIDLen)
	Service       string
	VersionID     int64
	VersionNumber int
	// Image is the pinned reference that ResolveImage returned: running it
	// always runs the same image, whatever the user's reference names
	// later (an image ID on Docker, a repository@digest on a cluster).
	Image       string
	ImageRef    string // the reference the user gave, for messages
	Port        int    // the port the process listens on (see Instance.Addr)
	Env         []string
	Command     []string // replaces the entrypoint when set
	Args        []string // replaces the image's command when set
	MemoryLimit int64    // bytes; 0 = none
	CPULimit    float64  // cores; 0 = none
	// ReadinessPath, when set, is the HTTP path that answers 2xx or 3xx
	// once the instance is ready; a runtime that checks readiness itself
	// (ReadinessWaiter) probes it instead of the bare port.
	ReadinessPath string
}

// State of an instance as the runtime sees it.
type State string

// Runtime states.
const (
	StateCreated State = "created"
	StateRunning State = "running"
	StatePaused  State = "paused"
	StateExited  State = "exited"
)

// Instance is an instance as the runtime reports it.
type Instance struct {
	ID            string
	ContainerID   string
	Service       string
	VersionID     int64
	VersionNumber int
	// Addr is host:port where the router reaches the instance.
	Addr string
	// Proxied means a userland proxy (docker-proxy) accepts connections at
	// Addr before the process listens, so a TCP connect proves nothing:
	// readiness must be probed with a request.
	Proxied   bool
	State     State
	ExitCode  int
	StartedAt time.Time
}

// Runtime runs instances.
//
// Error contract: ResolveImage returns an error wrapping core.ErrInvalid
// (naming the image) when the image is not on the machine and cannot be
// pulled. Stop and Inspect of an unknown instance return an error wrapping
// core.ErrNotFound, except that Stop of an unknown instance is not an error
// (stopping is idempotent). Other errors are failures of the runtime.
type Runtime interface {
	// ResolveImage returns a pinned reference to the image ref, one this
	// runtime can run (an image ID, or a repository@digest): running it
	// always runs the same image, whatever ref later names.
	ResolveImage(ctx context.Context, ref string) (string, error)
	// Start creates and starts an instance and returns once the runtime's
	// start call has returned; the process may not listen yet (callers probe
	// readiness). On error nothing is left behind.
	Start(ctx context.Context, spec InstanceSpec) (Instance, error)
	// Stop stops an instance (SIGTERM, then SIGKILL after grace) and removes
	// it. Stopping an instance that does not exist is not an error.
	Stop(ctx context.Context, id string, grace time.Duration) error
	// Inspect returns the current state of one instance.
	Inspect(ctx context.Context, id string) (Instance, error)
	// List returns every instance Wisp manages, whatever its state.
	List(ctx context.Context) ([]Instance, error)
	// Logs streams the instance's output, stdout and stderr, line by line
	// in the order the runtime recorded it. Without Follow the reader ends
	// (io.EOF) after the last line written so far; with Follow it waits for
	// more until the instance stops, the reader is closed or ctx is done.
	// An error wrapping core.ErrNotFound for an unknown instance.
	Logs(ctx context.Context, id string, opts LogOptions) (LogReader, error)
}

// LogOptions selects the lines Logs returns.
type LogOptions struct {
	// Follow keeps the stream open for new lines.
	Follow bool
	// Since, when set, skips lines written before it.
	Since time.Time
	// Tail, when above 0, starts with the last Tail lines (of those Since
	// selects); 0 means all.
	Tail int
	// Coalesce, when above 0, lets a following reader hold new lines up
	// to this long so that it reads them in bulk: one read and one wake-up
	// for many lines instead of one each. For a capture, not for a person
	// watching.
	Coalesce time.Duration
}

// Log streams.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// LogLine is one line of an instance's output, without its newline.
type LogLine struct {
	Time   time.Time // when the runtime recorded it (zero if it cannot tell)
	Stream string    // Stdout or Stderr
	Text   string
}

// LogReader reads an instance's output line by line.
type LogReader interface {
	// Next returns the next line, or io.EOF at the end of the stream.
	Next() (LogLine, error)
	// Close ends the stream; a Next in progress returns.
	Close() error
}

// LogBatchReader is a LogReader that can hand over, at once, every line
// it has read.
type LogBatchReader interface {
	LogReader
	// NextBatch waits for at least one line and appends it, and every
	// other line that can be had without waiting, to dst. At the end of
	// the stream it returns what is left (maybe nothing) and io.EOF.
	NextBatch(dst []LogLine) ([]LogLine, error)
}

// StreamMerger is a runtime whose logs may not tell stdout from stderr
// (Kubernetes, unless its PodLogsQuerySplitStreams feature gate is on).
type StreamMerger interface {
	// MergesStreams reports whether Logs gives every line as Stdout.
	MergesStreams() bool
}

// ReadinessWaiter is a runtime that knows when an instance is ready to take
// requests (on Kubernetes, from the pod's readiness probe). Wisp then waits
// on it instead of probing the instance's port itself.
type ReadinessWaiter interface {
	// WaitReady returns once instance id is ready, with its current
	// address; an error if it exits or ctx ends first (the message says
	// why, e.g. the exit code or the image pull failure).
	WaitReady(ctx context.Context, id string) (Instance, error)
}

// VersionRemover is a runtime that keeps resources per version besides its
// instances (on Kubernetes, a Deployment and a Service): they outlive the
// version's last instance, so that a scale from zero only adds a pod, and
// are removed when the version is deleted.
type VersionRemover interface {
	// Versions lists the IDs of the versions the runtime keeps resources
	// for, whether or not they have instances.
	Versions(ctx context.Context) ([]int64, error)
	// RemoveVersion removes what the runtime keeps for version id, its
	// instances included. Removing a version it keeps nothing for is not
	// an error.
	RemoveVersion(ctx context.Context, id int64) error
}

// Weigher is a runtime that can lower an instance's share of the CPU, so
// that when the machine is busy the kernel runs the other instances first.
// Wisp gives that low weight to the instances of a version that only
// receives mirrored copies (traffic.mirror), whose answers are thrown
// away: they must not take CPU from the primary's answers.
type Weigher interface {
	// SetBackground gives instance id a low CPU weight (true) or the
	// default one (false). It does not limit the instance when the CPU
	// is free.
	SetBackground(ctx context.Context, id string, background bool) error
}

// Pauser is a runtime that can freeze and thaw instances (cgroup freezer).
type Pauser interface {
	// Pause freezes a running instance; its address stays valid.
	Pause(ctx context.Context, id string) error
	// Unpause thaws a paused instance.
	Unpause(ctx context.Context, id string) error
}

// Precreator is a runtime that can create an instance ahead of need and
// start it later, so a cold start pays only for the start. Create may refuse
// (for example when the port of a host-network instance cannot be reserved
// that early); callers then start instances the ordinary way.
type Precreator interface {
	// Create creates an instance without starting it (state created).
	Create(ctx context.Context, spec InstanceSpec) (Instance, error)
	// StartCreated starts an instance made by Create. On error the
	// instance is left for the caller to Stop.
	StartCreated(ctx context.Context, id string) (Instance, error)
}

// BuildRequest is an image build.
type BuildRequest struct {
	// Context is the build context, a tar stream.
	Context io.Reader
	// Dockerfile is its path in the context; "" means "Dockerfile".
	Dockerfile string
	Tags       []string
	Labels     map[string]string
}

// Builder is a runtime that can build images.
type Builder interface {
	// Build builds an image and returns its ID. progress, when not nil,
	// receives the build's output line by line as it comes. A build that
	// fails because of its input (a failing step, a bad Dockerfile) returns
	// an error wrapping core.ErrInvalid that ends with the last lines of
	// output; other errors are failures of the runtime.
	Build(ctx context.Context, req BuildRequest, progress func(line string)) (string, error)
	// FindImage returns the ID of an image that carries every label.
	FindImage(ctx context.Context, labels map[string]string) (id string, ok bool, err error)
	// InspectImage returns the ID and labels of the image ref; an error
	// wrapping core.ErrNotFound when there is none.
	InspectImage(ctx context.Context, ref string) (ImageInfo, error)
	// TagImage gives image id the reference ref (moving ref if it exists).
	TagImage(ctx context.Context, id, ref string) error
}

// RegistryAuth is how to log in to a registry; empty means anonymous.
type RegistryAuth struct {
	Server   string
	Username string
	Password string
}

// Pusher is a builder that can push the images it built to a registry, so
// the nodes of a cluster can pull them.
type Pusher interface {
	// Push pushes ref (registry/repository:tag) and returns the pinned
	// reference registry/repository@sha256:… of what it pushed. A refused
	// login or an unreachable registry is an error wrapping core.ErrInvalid.
	Push(ctx context.Context, ref string, auth RegistryAuth, progress func(line string)) (string, error)
}

// ImageInfo describes an image.
type ImageInfo struct {
	ID     string
	Labels map[string]string
}

// EventKind is what happened to an instance.
type EventKind string

// Event kinds.
const (
	EventDied     EventKind = "died"     // the process exited (or was killed)
	EventOOM      EventKind = "oom"      // the process hit its memory limit (a died event follows)
	EventPaused   EventKind = "paused"   // the instance was frozen
	EventUnpaused EventKind = "unpaused" // the instance was thawed
	EventRemoved  EventKind = "removed"  // the container is gone
	// EventReady: the instance became ready to take requests, whoever
	// started it. Only a Shared runtime must report it: the replicas that
	// did not start an instance learn from it that they may use it.
	EventReady EventKind = "ready"
)

// Event reports a change to an instance that Wisp did not ask for, or did.
type Event struct {
	Kind       EventKind
	InstanceID string
	ExitCode   int // for EventDied
	// Instance is the instance as the runtime reports it, for EventReady:
	// its version and the address to reach it at. A runtime that cannot
	// tell leaves Addr empty, and the receiver asks Inspect.
	Instance Instance
}

// Shared is a runtime whose instances every Wisp replica sharing its store
// sees and may route to: the instances of a cluster, not of one machine's
// engine. Several replicas on a shared runtime elect a leader, which alone
// starts, scales and removes instances; the others mirror the instances the
// runtime reports ready (package activator). A Shared runtime is a Watcher
// that reports EventReady. A runtime that is not Shared (Docker) belongs to
// one replica: several replicas on it are independent installations.
type Shared interface {
	// SharedAcrossReplicas reports whether the instances are shared; a
	// runtime may be either, depending on its configuration.
	SharedAcrossReplicas() bool
}

// IsShared reports whether rt is a Shared runtime that shares its
// instances.
func IsShared(rt Runtime) bool {
	s, ok := rt.(Shared)
	return ok && s.SharedAcrossReplicas()
}

// Watcher is a runtime that reports instance events as they happen.
type Watcher interface {
	// Watch sends events until ctx is done or the stream breaks; the error
	// channel then receives the reason (nil when ctx is done).
	Watch(ctx context.Context) (<-chan Event, <-chan error)
}
