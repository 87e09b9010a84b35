package kube

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime"
)

// Logs implements runtime.Runtime with pods/log and timestamps. The API
// server returns stdout and stderr merged in one stream; with the
// PodLogsQuerySplitStreams feature gate on (alpha in Kubernetes 1.37, on
// the API server and the kubelet) it can return one of them, and then the
// lines of stderr are told apart: without following, by a second request
// for stderr alone whose lines are matched by time and text; when
// following, by following the two streams. Without the gate every line is
// reported as stdout. The API takes sinceTime in whole seconds: lines
// before Since within its second are dropped here. The output of a
// container that is waiting to be restarted is that of its last run.
func (k *Kube) Logs(ctx context.Context, id string, opts runtime.LogOptions) (runtime.LogReader, error) {
	split := k.splitLogs.Load()
	r, err := k.logs(ctx, id, opts, split)
	if split && apierrors.IsBadRequest(err) && strings.Contains(err.Error(), "stream") {
		k.log.Info("the kubelet merges stdout and stderr in pod logs (feature gate PodLogsQuerySplitStreams is off there): every line is reported as stdout", "err", err)
		k.splitLogs.Store(false)
		return k.logs(ctx, id, opts, false)
	}
	return r, err
}

func (k *Kube) logs(ctx context.Context, id string, opts runtime.LogOptions, split bool) (runtime.LogReader, error) {
	p := k.podOfInstance(id)
	if p == nil {
		return nil, core.NotFoundf("instance %s not found", id)
	}
	base := corev1.PodLogOptions{Container: containerName, Timestamps: true}
	if !opts.Since.IsZero() {
		base.SinceTime = ptr.To(metav1.NewTime(opts.Since.Truncate(time.Second)))
	}
	if cs := containerStatus(p); cs != nil && !opts.Follow && cs.State.Waiting != nil && cs.LastTerminationState.Terminated != nil {
		base.Previous = true
	}
	lines, err := k.readLines(ctx, p.Name, base, opts, split)
	if err != nil {
		return nil, err
	}
	if !opts.Follow {
		return &sliceReader{lines: lines}, nil
	}
	// Follow: the tail first, then what comes after it.
	cut := opts.Since
	if len(lines) > 0 {
		cut = lines[len(lines)-1].Time.Add(time.Nanosecond)
	}
	f := base
	f.Follow = true
	if !cut.IsZero() {
		f.SinceTime = ptr.To(metav1.NewTime(cut.Truncate(time.Second)))
	}
	fctx, cancel := context.WithCancel(ctx)
	r := &followReader{ready: lines, lines: make(chan runtime.LogLine, 64), cancel: cancel, done: make(chan struct{})}
	streams := []string{corev1.LogStreamAll}
	if split {
		streams = []string{corev1.LogStreamStdout, corev1.LogStreamStderr}
	}
	for _, s := range streams {
		o := f
		if split {
			o.Stream = ptr.To(s)
		}
		rc, err := k.cs.CoreV1().Pods(k.ns).GetLogs(p.Name, &o).Stream(fctx)
		if err != nil {
			cancel()
			return nil, k.logErr(id, err)
		}
		r.wg.Add(1)
		go r.pump(fctx, rc, streamOf(s), cut)
	}
	go func() { r.wg.Wait(); close(r.lines) }()
	return r, nil
}

// readLines reads the lines opts selects without following.
func (k *Kube) readLines(ctx context.Context, pod string, base corev1.PodLogOptions, opts runtime.LogOptions, split bool) ([]runtime.LogLine, error) {
	if opts.Follow && opts.Tail <= 0 {
		return nil, nil // the follow streams start at Since, or at the start
	}
	all := base
	if opts.Tail > 0 && opts.Since.IsZero() {
		all.TailLines = ptr.To(int64(opts.Tail))
	}
	lines, err := k.fetch(ctx, pod, all, runtime.Stdout)
	if err != nil {
		return nil, err
	}
	lines = since(lines, opts.Since)
	if opts.Tail > 0 && len(lines) > opts.Tail {
		lines = lines[len(lines)-opts.Tail:]
	}
	if !split || len(lines) == 0 {
		return lines, nil
	}
	errOpts := base
	errOpts.Stream = ptr.To(corev1.LogStreamStderr)
	errOpts.SinceTime = ptr.To(metav1.NewTime(lines[0].Time.Truncate(time.Second)))
	errLines, err := k.fetch(ctx, pod, errOpts, runtime.Stderr)
	if err != nil {
		return nil, err
	}
	isErr := map[runtime.LogLine]int{}
	for _, l := range errLines {
		l.Stream = runtime.Stdout
		isErr[l]++
	}
	for i, l := range lines {
		if isErr[l] > 0 {
			isErr[l]--
			lines[i].Stream = runtime.Stderr
		}
	}
	return lines, nil
}

// fetch reads a log request to its end.
func (k *Kube) fetch(ctx context.Context, pod string, o corev1.PodLogOptions, stream string) ([]runtime.LogLine, error) {
	rc, err := k.cs.CoreV1().Pods(k.ns).GetLogs(pod, &o).Stream(ctx)
	if err != nil {
		return nil, k.logErr(pod, err)
	}
	defer rc.Close()
	var out []runtime.LogLine
	br := bufio.NewReaderSize(rc, 32<<10)
	for {
		s, err := br.ReadString('\n')
		if s != "" {
			out = append(out, parseLine(stream, s))
		}
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("kube: logs of %s: %w", pod, err)
		}
	}
}

func (k *Kube) logErr(what string, err error) error {
	if apierrors.IsNotFound(err) {
		return core.NotFoundf("instance %s not found", what)
	}
	return fmt.Errorf("kube: logs of %s: %w", what, err)
}

// detectSplit finds out whether the API server returns one stream of a
// container's output: it validates the options before it looks for the
// pod, so a request for the stdout of a pod that does not exist is refused
// as invalid (422) when the feature gate is off, and not found otherwise.
// A kubelet without the gate refuses such requests later (400): Logs then
// falls back (see logs).
func (k *Kube) detectSplit(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	o := corev1.PodLogOptions{Container: containerName, Stream: ptr.To(corev1.LogStreamStdout)}
	rc, err := k.cs.CoreV1().Pods(k.ns).GetLogs("wisp-no-such-pod", &o).Stream(ctx)
	if err == nil {
		_ = rc.Close()
	}
	k.splitLogs.Store(err == nil || apierrors.IsNotFound(err))
	if !k.splitLogs.Load() {
		k.log.Info("the cluster merges stdout and stderr in pod logs (feature gate PodLogsQuerySplitStreams is off): every line is reported as stdout",
			"check", err)
	}
}

// MergesStreams implements runtime.StreamMerger.
func (k *Kube) MergesStreams() bool { return !k.splitLogs.Load() }

func streamOf(s string) string {
	if s == corev1.LogStreamStderr {
		return runtime.Stderr
	}
	return runtime.Stdout
}

// parseLine splits the kubelet's RFC 3339 timestamp from the text.
func parseLine(stream, s string) runtime.LogLine {
	s = strings.TrimSuffix(strings.TrimSuffix(s, "\n"), "\r")
	l := runtime.LogLine{Stream: stream, Text: s}
	if ts, text, ok := strings.Cut(s, " "); ok {
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			l.Time, l.Text = t, text
		}
	}
	return l
}

// since drops the lines before t (all of them are kept when t is zero).
func since(lines []runtime.LogLine, t time.Time) []runtime.LogLine {
	if t.IsZero() {
		return lines
	}
	out := lines[:0]
	for _, l := range lines {
		if !l.Time.Before(t) {
			out = append(out, l)
		}
	}
	return out
}

// sliceReader returns lines read already.
type sliceReader struct {
	lines []runtime.LogLine
}

func (r *sliceReader) Next() (runtime.LogLine, error) {
	if len(r.lines) == 0 {
		return runtime.LogLine{}, io.EOF
	}
	l := r.lines[0]
	r.lines = r.lines[1:]
	return l, nil
}

func (r *sliceReader) Close() error { return nil }

// followReader returns the lines read already, then the lines of one or
// two following streams as they come.
type followReader struct {
	ready  []runtime.LogLine
	lines  chan runtime.LogLine
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   chan struct{} // closed by Close
	once   sync.Once
}

// pump reads one stream into r.lines, dropping lines before cut.
func (r *followReader) pump(ctx context.Context, rc io.ReadCloser, stream string, cut time.Time) {
	defer r.wg.Done()
	defer rc.Close()
	go func() { <-ctx.Done(); _ = rc.Close() }() // unblocks the read
	br := bufio.NewReaderSize(rc, 32<<10)
	for {
		s, err := br.ReadString('\n')
		if s != "" {
			l := parseLine(stream, s)
			if cut.IsZero() || !l.Time.Before(cut) {
				select {
				case r.lines <- l:
				case <-ctx.Done():
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

func (r *followReader) Next() (runtime.LogLine, error) {
	if len(r.ready) > 0 {
		l := r.ready[0]
		r.ready = r.ready[1:]
		return l, nil
	}
	select {
	case <-r.done:
		return runtime.LogLine{}, io.EOF
	default:
	}
	select {
	case l, ok := <-r.lines:
		if !ok {
			return runtime.LogLine{}, io.EOF
		}
		return l, nil
	case <-r.done:
		return runtime.LogLine{}, io.EOF
	}
}

func (r *followReader) Close() error {
	r.once.Do(func() { close(r.done); r.cancel() })
	return nil
}
