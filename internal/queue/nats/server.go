package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ServerConfig configures a NATS server with JetStream: the one embedded in
// the daemon, or the standalone one of "wisp nats" that several replicas
// share.
type ServerConfig struct {
	// StoreDir holds JetStream's files; it is created if missing.
	StoreDir string
	// Listen is the client port, host:port; port 0 picks a free one.
	// Empty: no port at all (in-process connections only).
	Listen string
	// Token, when set, is required from every client.
	Token string
	// Monitor, when set, opens NATS's HTTP monitoring port there
	// (host:port, port 0 picks a free one); it serves /healthz.
	Monitor string
	// Logger, when set, receives the server's warnings and errors (its
	// notices at debug level). Nil: the server logs nothing.
	Logger *slog.Logger
}

// The settings a SettingError names.
const (
	SettingListen   = "listen"
	SettingMonitor  = "monitor"
	SettingStoreDir = "store dir"
)

// A SettingError is a setting of ServerConfig that the server cannot use:
// a malformed address, a port in use, a store dir it cannot write.
type SettingError struct {
	Setting string // SettingListen, SettingMonitor or SettingStoreDir
	Value   string
	Err     error
}

func (e *SettingError) Error() string { return fmt.Sprintf("%s %q: %v", e.Setting, e.Value, e.Err) }
func (e *SettingError) Unwrap() error { return e.Err }

// Server is a running NATS server with JetStream.
type Server struct {
	srv *server.Server
}

// readyTimeout bounds the server's start.
const readyTimeout = 30 * time.Second

// StartServer starts a NATS server with JetStream file storage in
// cfg.StoreDir and returns once it accepts connections. Its messages are at
// most MaxPayload bytes.
func StartServer(cfg ServerConfig) (*Server, error) {
	if cfg.StoreDir == "" {
		return nil, &SettingError{Setting: SettingStoreDir, Err: errors.New("empty")}
	}
	opts := &server.Options{
		ServerName:    "wisp",
		JetStream:     true,
		StoreDir:      cfg.StoreDir,
		NoSigs:        true,
		NoLog:         true, // the server's log goes to serverLog
		MaxPayload:    MaxPayload,
		DontListen:    cfg.Listen == "",
		Authorization: cfg.Token,
	}
	if cfg.Listen != "" {
		host, port, err := SplitAddr(cfg.Listen)
		if err != nil {
			return nil, &SettingError{Setting: SettingListen, Value: cfg.Listen, Err: err}
		}
		opts.Host, opts.Port = host, port
	}
	if cfg.Monitor != "" {
		host, port, err := SplitAddr(cfg.Monitor)
		if err != nil {
			return nil, &SettingError{Setting: SettingMonitor, Value: cfg.Monitor, Err: err}
		}
		opts.HTTPHost, opts.HTTPPort = host, port
	}
	if err := checkWritable(cfg.StoreDir); err != nil {
		return nil, &SettingError{Setting: SettingStoreDir, Value: cfg.StoreDir, Err: err}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats: server: %w", err)
	}
	lg := &serverLog{log: cfg.Logger, cfg: cfg}
	srv.SetLoggerV2(lg, false, false, false)
	srv.Start()
	// A port in use or a store the server cannot open reach it as a fatal
	// log line, while ReadyForConnections would wait out its timeout.
	for deadline := time.Now().Add(readyTimeout); ; {
		if err := lg.fatal(); err != nil {
			srv.Shutdown()
			return nil, err
		}
		if srv.ReadyForConnections(50 * time.Millisecond) {
			break
		}
		if time.Now().After(deadline) {
			srv.Shutdown()
			return nil, fmt.Errorf("nats: the server was not ready within %s", readyTimeout)
		}
	}
	if err := lg.fatal(); err != nil {
		srv.Shutdown()
		return nil, err
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		return nil, &SettingError{Setting: SettingStoreDir, Value: cfg.StoreDir, Err: errors.New("JetStream did not start")}
	}
	return &Server{srv: srv}, nil
}

// SplitAddr parses host:port for the server: port 0 asks for a free one.
func SplitAddr(addr string) (host string, port int, err error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, errors.New("want host:port, such as :4222 or 127.0.0.1:4222")
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	if port == 0 {
		port = server.RANDOM_PORT // the server takes 0 for its default port
	}
	return host, port, nil
}

// checkWritable creates dir if needed and checks that files can be made in
// it: JetStream would otherwise fail later, or on its first stream.
func checkWritable(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".wisp-probe-*")
	if err != nil {
		return err
	}
	_ = f.Close()
	return os.Remove(f.Name())
}

// Addr is the client port's address; nil without one.
func (s *Server) Addr() *net.TCPAddr {
	a, _ := s.srv.Addr().(*net.TCPAddr)
	return a
}

// ClientURL is nats://host:port of the client port, "" without one.
func (s *Server) ClientURL() string {
	if a := s.Addr(); a != nil {
		return "nats://" + a.String()
	}
	return ""
}

// MonitorAddr is the monitoring port's address; nil without one.
func (s *Server) MonitorAddr() *net.TCPAddr { return s.srv.MonitorAddr() }

// Shutdown closes every connection and stops the server; it returns once
// the server has stopped.
func (s *Server) Shutdown() {
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
}

// serverLog is the server's logger: it keeps the first fatal error, which
// the server reports only in its log and StartServer returns, and forwards
// the rest to log.
type serverLog struct {
	log *slog.Logger
	cfg ServerConfig

	mu  sync.Mutex
	err error
}

func (l *serverLog) fatal() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// fatalSetting maps the server's fatal messages (their formats) to the
// setting at fault.
var fatalSetting = map[string]string{
	"Error listening on port: %s, %q":  SettingListen,
	"Can't start monitoring: %v":       SettingMonitor,
	"Error starting monitor on %q: %v": SettingMonitor,
	"Can't start JetStream: %v":        SettingStoreDir,
}

func (l *serverLog) Fatalf(format string, v ...any) {
	var err error
	switch setting := fatalSetting[format]; setting {
	case SettingListen:
		err = &SettingError{Setting: setting, Value: l.cfg.Listen, Err: lastError(v)}
	case SettingMonitor:
		err = &SettingError{Setting: setting, Value: l.cfg.Monitor, Err: lastError(v)}
	case SettingStoreDir:
		err = &SettingError{Setting: setting, Value: l.cfg.StoreDir, Err: lastError(v)}
	default:
		err = fmt.Errorf("nats: server: "+format, v...)
	}
	l.mu.Lock()
	if l.err == nil {
		l.err = err
	}
	l.mu.Unlock()
}

// lastError is the cause in a fatal message's arguments (its last one).
func lastError(v []any) error {
	if len(v) == 0 {
		return errors.New("failed")
	}
	switch e := v[len(v)-1].(type) {
	case error:
		return e
	default:
		return fmt.Errorf("%v", e)
	}
}

func (l *serverLog) logf(level slog.Level, format string, v ...any) {
	if l.log != nil {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, v...))
	}
}

func (l *serverLog) Noticef(format string, v ...any) { l.logf(slog.LevelDebug, format, v...) }
func (l *serverLog) Warnf(format string, v ...any)   { l.logf(slog.LevelWarn, format, v...) }
func (l *serverLog) Errorf(format string, v ...any)  { l.logf(slog.LevelError, format, v...) }
func (l *serverLog) Debugf(string, ...any)           {}
func (l *serverLog) Tracef(string, ...any)           {}
