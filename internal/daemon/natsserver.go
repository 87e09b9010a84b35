package daemon

import (
	"context"
	"log/slog"

	natsq "github.com/wisp-run/wisp/internal/queue/nats"
)

// NATSConfig configures the NATS server of "wisp nats", the one that
// several replicas share (natsq.ServerConfig).
type NATSConfig struct {
	// Listen is the client port, host:port (port 0: a free one).
	Listen string
	// StoreDir holds JetStream's files.
	StoreDir string
	// Token is required from every client.
	Token string
	// Monitor, when set, opens the HTTP monitoring port (/healthz).
	Monitor string
}

// NATSSettingError is a setting the server could not use; its Setting is
// one of NATSListen, NATSMonitor and NATSStoreDir.
type NATSSettingError = natsq.SettingError

// The settings a NATSSettingError names.
const (
	NATSListen   = natsq.SettingListen
	NATSMonitor  = natsq.SettingMonitor
	NATSStoreDir = natsq.SettingStoreDir
)

// Validate checks the addresses' form (host:port); what only the start can
// tell (a port in use, a store dir it cannot write) RunNATS reports.
func (c NATSConfig) Validate() error {
	if _, _, err := natsq.SplitAddr(c.Listen); err != nil {
		return &NATSSettingError{Setting: NATSListen, Value: c.Listen, Err: err}
	}
	if c.Monitor == "" {
		return nil
	}
	if _, _, err := natsq.SplitAddr(c.Monitor); err != nil {
		return &NATSSettingError{Setting: NATSMonitor, Value: c.Monitor, Err: err}
	}
	return nil
}

// RunNATS runs a NATS server with JetStream (the embedded server's setup,
// messages up to natsq.MaxPayload) until ctx ends, then stops it. It logs
// where it listens and where JetStream stores once clients can connect.
func RunNATS(ctx context.Context, cfg NATSConfig, logger *slog.Logger) error {
	srv, err := natsq.StartServer(natsq.ServerConfig{StoreDir: cfg.StoreDir, Listen: cfg.Listen, Token: cfg.Token, Monitor: cfg.Monitor, Logger: logger})
	if err != nil {
		return err
	}
	attrs := []any{"url", srv.ClientURL(), "jetstream_dir", cfg.StoreDir, "max_payload", natsq.MaxPayload}
	if m := srv.MonitorAddr(); m != nil {
		attrs = append(attrs, "monitor", "http://"+m.String()+"/healthz")
	}
	logger.Info("NATS server listening", attrs...)
	<-ctx.Done()
	logger.Info("shutting down")
	srv.Shutdown()
	logger.Info("stopped")
	return nil
}
