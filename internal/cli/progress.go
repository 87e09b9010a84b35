package cli

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"
)

// stepRE matches the engine's step lines: "Step 2/7 : RUN go mod download".
var stepRE = regexp.MustCompile(`^Step (\d+)/(\d+) : (.*)$`)

// failedRE matches the daemon's last line of a failed build; the CLI
// reports the build's error itself.
var failedRE = regexp.MustCompile(`^wisp: build \d+ failed`)

// buildProgress shows a build's output as steps with their durations. On a
// terminal the current step is one line with a spinner and a clock, and
// each finished step stays as a line with a tick; otherwise every step is
// a plain line when it starts and another when it ends. Wisp's own lines
// ("wisp: …") always show; the engine's other output shows with verbose
// (a failed build's error carries the failing step's last lines anyway).
type buildProgress struct {
	w       io.Writer
	tty     bool
	verbose bool
	now     func() time.Time

	mu        sync.Mutex
	step      string // "[2/7] RUN go mod download"
	stepStart time.Time
	frame     int
	drawn     bool // the spinner line is on screen
	failed    bool
	stop      chan struct{}
	stopped   sync.WaitGroup
}

func newBuildProgress(w io.Writer, tty, verbose bool) *buildProgress {
	p := &buildProgress{w: w, tty: tty, verbose: verbose, now: time.Now, stop: make(chan struct{})}
	if tty {
		p.stopped.Add(1)
		go p.spin()
	}
	return p
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

var spinner = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

func (p *buildProgress) spin() {
	defer p.stopped.Done()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			if p.step != "" {
				p.frame++
				p.draw()
			}
			p.mu.Unlock()
		}
	}
}

// draw rewrites the spinner line (tty only; p.mu held).
func (p *buildProgress) draw() {
	fmt.Fprintf(p.w, "\r\033[K%s %s  %s", spinner[p.frame%len(spinner)], p.step, seconds(p.now().Sub(p.stepStart)))
	p.drawn = true
}

// clear removes the spinner line so that a full line can be printed.
func (p *buildProgress) clear() {
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
}

// Line takes one line of the build's output.
func (p *buildProgress) Line(l string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failed {
		// The rest of the error, which the CLI prints; its copy of the
		// steps is not a new step.
		if p.verbose {
			p.clear()
			fmt.Fprintln(p.w, "    "+l)
		}
		return
	}
	if m := stepRE.FindStringSubmatch(l); m != nil {
		p.endStep("✓")
		p.step, p.stepStart = fmt.Sprintf("[%s/%s] %s", m[1], m[2], m[3]), p.now()
		if p.tty {
			p.draw()
		} else {
			fmt.Fprintln(p.w, p.step)
		}
		return
	}
	switch {
	case failedRE.MatchString(l):
		p.endStep("✗")
		p.failed = true
		return
	case strings.HasPrefix(l, "wisp: "):
		// Wisp speaks before the first step and after the last.
		p.endStep("✓")
	case p.verbose:
		l = "    " + l
	default:
		return
	}
	if p.tty {
		p.clear()
		fmt.Fprintln(p.w, l)
		if p.step != "" {
			p.draw()
		}
		return
	}
	fmt.Fprintln(p.w, l)
}

// endStep closes the current step with mark (p.mu held).
func (p *buildProgress) endStep(mark string) {
	if p.step == "" {
		return
	}
	d := seconds(p.now().Sub(p.stepStart))
	if p.tty {
		p.clear()
		fmt.Fprintf(p.w, "%s %s  %s\n", mark, p.step, d)
	} else {
		what := "done in"
		if mark != "✓" {
			what = "failed after"
		}
		fmt.Fprintf(p.w, "%s %s %s\n", p.step[:strings.Index(p.step, "]")+1], what, d)
	}
	p.step = ""
}

// Finish closes the last step: ok marks it done, otherwise failed.
func (p *buildProgress) Finish(ok bool) {
	if p.tty {
		close(p.stop)
		p.stopped.Wait()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if ok {
		p.endStep("✓")
	} else {
		p.endStep("✗")
	}
	p.clear()
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }
