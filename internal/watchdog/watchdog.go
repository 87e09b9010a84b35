// Package watchdog runs a stdin/stdout function behind HTTP, in the classic
// IronFunctions / OpenFaaS-watchdog style: for every request it starts the
// function's process, writes the request body to its stdin, passes the
// request's metadata in its environment, and answers with what it wrote to
// stdout. Its stderr goes to the watchdog's log.
//
// Environment of the function, CGI style (RFC 3875, section 4.1):
// REQUEST_METHOD, REQUEST_URI, PATH_INFO (the path), QUERY_STRING,
// CONTENT_TYPE, CONTENT_LENGTH, and one HTTP_<NAME> per request header
// (uppercase, '-' becomes '_'), on top of the watchdog's own environment.
//
// Answers: 200 with stdout when the process exits 0; 500 with the exit code
// and the end of stderr when it exits otherwise; 504 when it runs past the
// timeout (its whole process group is killed); 413 for a body over the
// limit; 502 when the output exceeds its limit.
package watchdog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Config configures the watchdog.
type Config struct {
	// Command is the function: argv, run once per request.
	Command []string
	// Timeout bounds one request's process. Default 60s.
	Timeout time.Duration
	// MaxBody bounds a request body; MaxOutput bounds what stdout may hold.
	// Defaults 64 MiB each.
	MaxBody, MaxOutput int64
	// ContentType of successful answers; empty means sniffed from the output.
	ContentType string
	// Env is the watchdog's own environment, passed on to the function.
	Env []string
}

// Defaults.
const (
	DefaultTimeout = 60 * time.Second
	DefaultMax     = 64 << 20
	stderrTail     = 4 << 10
)

// Validate fills defaults and checks the command.
func (c *Config) Validate() error {
	if len(c.Command) == 0 || c.Command[0] == "" {
		return errors.New("watchdog: no function command; pass it after -- or set WISP_FUNCTION")
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxBody <= 0 {
		c.MaxBody = DefaultMax
	}
	if c.MaxOutput <= 0 {
		c.MaxOutput = DefaultMax
	}
	return nil
}

// Handler serves every request by running the function once.
type Handler struct {
	cfg Config
	log *slog.Logger
}

// New returns the handler.
func New(cfg Config, logger *slog.Logger) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Handler{cfg: cfg, log: logger}, nil
}

// Env returns the function's environment for r: base, then the request's
// metadata, CGI style.
func Env(base []string, r *http.Request) []string {
	env := append([]string(nil), base...)
	env = append(env,
		"REQUEST_METHOD="+r.Method,
		"REQUEST_URI="+r.URL.RequestURI(),
		"PATH_INFO="+r.URL.Path,
		"QUERY_STRING="+r.URL.RawQuery,
		"CONTENT_TYPE="+r.Header.Get("Content-Type"),
	)
	if r.ContentLength >= 0 {
		env = append(env, "CONTENT_LENGTH="+strconv.FormatInt(r.ContentLength, 10))
	}
	for name, values := range r.Header {
		key := "HTTP_" + strings.Map(func(c rune) rune {
			switch {
			case c == '-':
				return '_'
			case c >= 'a' && c <= 'z':
				return c - 'a' + 'A'
			case c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_':
				return c
			}
			return -1
		}, name)
		env = append(env, key+"="+strings.Join(values, ", "))
	}
	if r.Host != "" {
		env = append(env, "HTTP_HOST="+r.Host)
	}
	return env
}

// limitedBuffer keeps up to max bytes and reports overflow.
type limitedBuffer struct {
	buf      bytes.Buffer
	max      int64
	overflow bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - int64(b.buf.Len()); int64(len(p)) > room {
		b.overflow = true
		if room > 0 {
			b.buf.Write(p[:room])
		}
		return 0, errors.New("output over the limit")
	}
	return b.buf.Write(p)
}

// tailBuffer keeps the last n bytes written to it.
type tailBuffer struct {
	n   int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.n {
		t.buf = t.buf[len(t.buf)-t.n:]
	}
	return len(p), nil
}

// logWriter sends stderr to the log, line by line, and keeps its tail.
type logWriter struct {
	log  *slog.Logger
	tail tailBuffer
	line []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	_, _ = w.tail.Write(p)
	w.line = append(w.line, p...)
	for {
		i := bytes.IndexByte(w.line, '\n')
		if i < 0 {
			break
		}
		w.log.Info("function", "stderr", string(w.line[:i]))
		w.line = w.line[i+1:]
	}
	return len(p), nil
}

func (w *logWriter) flush() {
	if len(w.line) > 0 {
		w.log.Info("function", "stderr", string(w.line))
		w.line = nil
	}
}

// ServeHTTP runs the function for one request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > h.cfg.MaxBody {
		http.Error(w, fmt.Sprintf("request body of %d bytes is over the limit of %d", r.ContentLength, h.cfg.MaxBody), http.StatusRequestEntityTooLarge)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.cfg.Command[0], h.cfg.Command[1:]...) //nolint:gosec // G204: running the function is the point
	cmd.Env = Env(h.cfg.Env, r)
	// Its own process group, so a timeout kills its children too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	body := http.MaxBytesReader(w, r.Body, h.cfg.MaxBody)
	cmd.Stdin = body
	out := &limitedBuffer{max: h.cfg.MaxOutput}
	cmd.Stdout = out
	stderr := &logWriter{log: h.log, tail: tailBuffer{n: stderrTail}}
	cmd.Stderr = stderr
	start := time.Now()
	err := cmd.Run()
	stderr.flush()
	var mbe *http.MaxBytesError
	var exit *exec.ExitError
	switch {
	case errors.As(err, &mbe):
		http.Error(w, fmt.Sprintf("request body is over the limit of %d bytes", h.cfg.MaxBody), http.StatusRequestEntityTooLarge)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		h.log.Warn("function timed out", "timeout", h.cfg.Timeout)
		http.Error(w, fmt.Sprintf("the function did not finish within %s", h.cfg.Timeout), http.StatusGatewayTimeout)
	case r.Context().Err() != nil:
		// The client went away; the process was killed.
	case out.overflow:
		http.Error(w, fmt.Sprintf("the function wrote more than %d bytes", h.cfg.MaxOutput), http.StatusBadGateway)
	case errors.As(err, &exit):
		h.log.Warn("function failed", "exit_code", exit.ExitCode(), "duration", time.Since(start))
		msg := fmt.Sprintf("the function exited with code %d", exit.ExitCode())
		if tail := strings.TrimSpace(string(stderr.tail.buf)); tail != "" {
			msg += "; the end of its stderr:\n" + tail
		}
		http.Error(w, msg, http.StatusInternalServerError)
	case err != nil:
		h.log.Error("cannot run the function", "err", err)
		http.Error(w, "cannot run the function: "+err.Error(), http.StatusInternalServerError)
	default:
		ct := h.cfg.ContentType
		if ct == "" {
			ct = http.DetectContentType(out.buf.Bytes())
		}
		w.Header().Set("Content-Type", ct)
		w.Header().Set("Content-Length", strconv.Itoa(out.buf.Len()))
		_, _ = w.Write(out.buf.Bytes())
	}
}

// FromEnv builds a Config from the watchdog's arguments and environment:
// the function is args (after --), or WISP_FUNCTION run by /bin/sh -c;
// WISP_TIMEOUT, WISP_MAX_BODY, WISP_MAX_OUTPUT, WISP_CONTENT_TYPE.
func FromEnv(args []string, getenv func(string) string) (Config, error) {
	c := Config{Command: args, ContentType: getenv("WISP_CONTENT_TYPE"), Env: os.Environ()}
	if len(c.Command) == 0 {
		if f := getenv("WISP_FUNCTION"); f != "" {
			c.Command = []string{"/bin/sh", "-c", f}
		}
	}
	if v := getenv("WISP_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			secs, serr := strconv.ParseFloat(v, 64)
			if serr != nil {
				return c, fmt.Errorf("WISP_TIMEOUT %q is not a duration such as 30s", v)
			}
			d = time.Duration(secs * float64(time.Second))
		}
		c.Timeout = d
	}
	for _, e := range []struct {
		name string
		dst  *int64
	}{{"WISP_MAX_BODY", &c.MaxBody}, {"WISP_MAX_OUTPUT", &c.MaxOutput}} {
		if v := getenv(e.name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				return c, fmt.Errorf("%s %q is not a positive number of bytes", e.name, v)
			}
			*e.dst = n
		}
	}
	return c, c.Validate()
}
