package cli

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wisp-run/wisp/internal/config"
	"github.com/wisp-run/wisp/internal/daemon"
)

// natsFlags names the flag of each server setting, for errors.
var natsFlags = map[string]string{
	daemon.NATSListen:   "--listen",
	daemon.NATSMonitor:  "--monitor",
	daemon.NATSStoreDir: "--store-dir",
}

// natsFlagError names the flag of a setting the server could not use.
func natsFlagError(err error) error {
	var se *daemon.NATSSettingError
	if errors.As(err, &se) {
		return fmt.Errorf("%s %q: %w", natsFlags[se.Setting], se.Value, se.Err)
	}
	return err
}

func (a *app) natsCommand(defaults config.Config) *cobra.Command {
	cfg := defaults
	listen := a.getenv(config.EnvNATSListen)
	if listen == "" {
		listen = ":4222"
	}
	storeDir := a.getenv(config.EnvNATSStoreDir)
	token := a.getenv(config.EnvNATSToken)
	monitor := a.getenv(config.EnvNATSMonitor)
	cmd := &cobra.Command{
		Use:   "nats",
		Short: "Run the NATS server that several Wisp replicas share",
		Long: `Run a NATS server with JetStream in the foreground until SIGINT or SIGTERM,
then stop it cleanly. It is the server that "wisp serve" embeds, on a port of
its own: replicas that share a store point at it with --nats-url and send its
token in WISP_NATS_TOKEN, so that every replica sees every async call, event
and schedule (a replica's embedded server is its own).

JetStream keeps its files in --store-dir (default <data-dir>/nats): keep it on
a volume that outlives the process, and run one "wisp nats" per store dir.
Every client must send the token: set WISP_NATS_TOKEN (at least 16
characters, such as the output of "openssl rand -hex 24"), or --token, which
other users of the machine can read in the process list.

--monitor opens NATS's HTTP monitoring port; its /healthz answers 200 while
the server and JetStream are up, for a Kubernetes probe or a load balancer.

  WISP_NATS_TOKEN=... wisp nats --data-dir /var/lib/wisp --monitor :8222
  WISP_NATS_URL=nats://nats-host:4222 WISP_NATS_TOKEN=... wisp serve ...`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cfg.ValidateLogging(); err != nil {
				return usageError{err}
			}
			if token == "" {
				return usagef("--token: the server needs a token that clients send: set %s (for example to the output of openssl rand -hex 24), or --token", config.EnvNATSToken)
			}
			if len(token) < 16 || strings.ContainsAny(token, " \t\r\n") {
				return usagef("--token (%s) must be at least 16 characters without spaces", config.EnvNATSToken)
			}
			if storeDir == "" {
				if a.dataDir == "" {
					return usagef("--store-dir: empty, and there is no --data-dir to default to")
				}
				storeDir = filepath.Join(a.dataDir, "nats")
			}
			ncfg := daemon.NATSConfig{Listen: listen, StoreDir: storeDir, Token: token, Monitor: monitor}
			if err := ncfg.Validate(); err != nil {
				return usageError{natsFlagError(err)}
			}
			logger := newLogger(a, cfg).With("component", "nats")
			return natsFlagError(daemon.RunNATS(cmd.Context(), ncfg, logger))
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", listen, "client port, host:port; port 0 picks a free one (env "+config.EnvNATSListen+")")
	f.StringVar(&storeDir, "store-dir", storeDir, "where JetStream keeps its files (env "+config.EnvNATSStoreDir+"; default <data-dir>/nats)")
	f.StringVar(&token, "token", token, "the token every client must send, at least 16 characters (env "+config.EnvNATSToken+", which keeps it out of the process list)")
	f.StringVar(&monitor, "monitor", monitor, "open NATS's HTTP monitoring port (/healthz, /varz) at host:port, such as :8222 (env "+config.EnvNATSMonitor+"; default off)")
	f.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "log format: text or json (env "+config.EnvLogFormat+")")
	f.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "log level: debug (the server's notices too), info, warn or error (env "+config.EnvLogLevel+")")
	return cmd
}
