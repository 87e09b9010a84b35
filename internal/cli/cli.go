// Package cli is the wisp command line: `wisp serve` runs the daemon and every
// other command is a client of the admin API.
package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wisp-run/wisp/internal/apiclient"
	"github.com/wisp-run/wisp/internal/buildinfo"
	"github.com/wisp-run/wisp/internal/config"
)

// Env names read by the client commands.
const (
	EnvServer = "WISP_SERVER"
	EnvToken  = "WISP_TOKEN"
	EnvCACert = "WISP_CA_CERT"
)

// app carries what every command shares: streams, the environment and the
// global flags.
type app struct {
	stdout, stderr io.Writer
	getenv         func(string) string

	server  string
	token   string
	dataDir string
	output  string
	caCert  string
	// roots is what --ca-cert adds to the trusted certificates (nil: the
	// system's only).
	roots *x509.CertPool
}

// usageError marks errors in how a command was called (exit code 2).
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// Run runs the wisp command line with args (without the program name) and
// returns the process exit code: 0 on success, 1 on failure, 2 on bad usage.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	a := &app{stdout: stdout, stderr: stderr, getenv: getenv}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "Error:", err)
	var ue usageError
	usage := errors.As(err, &ue) || isCobraUsageError(err)
	if a.output == "json" {
		a.printErrorJSON(err, usage)
	}
	if usage {
		return 2
	}
	return 1
}

// printErrorJSON prints a failure for scripts that asked for -o json: the
// API's error object as the server sent it, or one of the same shape for
// errors of the client (code "usage" for bad usage, "client" otherwise).
func (a *app) printErrorJSON(err error, usage bool) {
	d := struct {
		Status  int    `json:"status,omitempty"`
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field,omitempty"`
	}{Code: "client", Message: err.Error()}
	var ae *apiclient.Error
	switch {
	case errors.As(err, &ae):
		d.Status, d.Code, d.Message, d.Field = ae.Status, ae.Code, ae.Message, ae.Field
	case usage:
		d.Code = "usage"
	}
	_ = a.printJSON(map[string]any{"error": d})
}

// isCobraUsageError recognises cobra's own argument and flag errors.
func isCobraUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "accepts ", "requires ",
		"invalid argument", "flag needs an argument", "required flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

func (a *app) rootCommand() *cobra.Command {
	defaults := config.Default()
	defaults.ApplyEnv(a.getenv)
	root := &cobra.Command{
		Use:   "wisp",
		Short: "Wisp runs containers as scale-to-zero services with versions and traffic splits",
		Long: `Wisp is a self-hosted serverless platform for containers.

Start the daemon with "wisp serve" (and, for several replicas, their shared
NATS server with "wisp nats"); every other command talks to its admin API
(--server, default http://127.0.0.1:8081) with the admin token (--token, or
the one "wisp serve" saved in the data directory).

Deploy from source in one command (the service is created if needed):
  wisp deploy hello ./hello

Or from images you built yourself:
  wisp service create hello
  wisp version create hello --image hello:1 --env GREETING=Go
  wisp version create hello --image hello:2 --env GREETING=Docker
  wisp traffic set hello 1=90 2=10 --tag canary=2
  wisp traffic history hello
  wisp traffic rollback hello

Call it, sync or as an async call with retries:
  wisp invoke hello /greet
  wisp invoke hello /jobs -d @job.json --async
  wisp calls list hello --state dead
Or on events and on a schedule:
  wisp trigger create on-orders --service hello --subject 'orders.>'
  wisp event publish orders.created --type com.example.order --source /shop -d '{}'
  wisp schedule create tick --service hello --cron '*/5 * * * *'`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// --version prints this client's build; "wisp version" stays the
		// versions command group. The server's: GET /v1/info.
		Version: buildinfo.Read().String(),
	}
	root.SetVersionTemplate("wisp {{.Version}}\n")
	pf := root.PersistentFlags()
	server := a.getenv(EnvServer)
	if server == "" {
		server = "http://" + defaults.AdminAddr
	}
	pf.StringVar(&a.server, "server", server, "admin API address (env "+EnvServer+")")
	pf.StringVar(&a.token, "token", a.getenv(EnvToken), "admin token (env "+EnvToken+"; default: the token saved in --data-dir)")
	pf.StringVar(&a.dataDir, "data-dir", defaults.DataDir, "data directory of the local daemon (env "+config.EnvDataDir+")")
	pf.StringVarP(&a.output, "output", "o", "table", "output format: table or json")
	pf.StringVar(&a.caCert, "ca-cert", a.getenv(EnvCACert), "PEM certificate to trust for an https:// --server, such as the admin API's self-signed one (env "+EnvCACert+")")
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if a.output != "table" && a.output != "json" {
			return usagef("--output must be table or json, got %q", a.output)
		}
		if a.caCert != "" {
			roots, err := loadRoots(a.caCert)
			if err != nil {
				return usagef("--ca-cert: %v", err)
			}
			a.roots = roots
		}
		return nil
	}
	root.AddCommand(a.serveCommand(defaults), a.natsCommand(defaults), a.serviceCommand(), a.versionCommand(), a.trafficCommand(), a.rolloutCommand(), a.instancesCommand(), a.logsCommand(), a.buildCommand(), a.deployCommand(),
		a.invokeCommand(), a.callsCommand(), a.triggerCommand(), a.eventCommand(), a.scheduleCommand())
	return root
}

// client returns an admin API client with the resolved token.
func (a *app) client() *apiclient.Client {
	tok := a.token
	if tok == "" {
		tok, _ = config.ReadToken(a.dataDir) // no token: the server's 401 says what to do
	}
	var opts []apiclient.Option
	if a.roots != nil {
		opts = append(opts, apiclient.WithRootCAs(a.roots))
	}
	return apiclient.New(a.server, tok, opts...)
}

// loadRoots returns the system's trusted certificates plus those in the PEM
// file at path.
func loadRoots(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path) //nolint:gosec // G304: the user names the file to trust
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}
