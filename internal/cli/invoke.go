package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/wisp-run/wisp/internal/apiclient"
	"github.com/wisp-run/wisp/internal/core"
)

// EnvRouter names the router's address for `wisp invoke`: the variable
// every instance gets (docs/runtime.md), so that the command works inside
// one as it does on the host.
const EnvRouter = "WISP_ROUTER_URL"

// maxInvokeBody bounds what `wisp invoke` prints of a sync answer.
const maxInvokeBody = 64 << 20

func (a *app) invokeCommand() *cobra.Command {
	var (
		method, data, router  string
		headers               []string
		async, wait           bool
		idemKey, callback     string
		timeout, pollInterval time.Duration
	)
	cmd := &cobra.Command{
		Use:   "invoke SERVICE [PATH]",
		Short: "Call a service through the router, sync or as an async call",
		Long: `Send a request to a service through the router and print the answer's body.

PATH (default /) may carry a query. -d sends a body (and makes the method
POST unless -X says otherwise): the text as given, @FILE for a file's
content, @- for standard input. -H adds a header, as curl does.

The router is found from the service's URL (GET /v1/services/NAME); a
service on *.localhost is reached at 127.0.0.1. Where the service's host
does not resolve, give the router's address with --router (env ` + EnvRouter + `):
the request then goes to ROUTER/s/SERVICE/PATH (or /async/SERVICE/PATH).
Inside an instance, ` + EnvRouter + ` is already set.

A sync call prints the body; an answer that is not 2xx also prints its
status on stderr, and one of 400 or more exits with code 1.

With --async the router stores the request as an async call and answers at
once; the command prints the call's ID, to read with "wisp calls get ID".
--idempotency-key makes a repeated submission return the first call;
--callback has Wisp POST the result to a URL when the call is done. With
--wait the command polls the call until it is done (at most --timeout) and
prints the service's answer as a sync call would.`,
		Example: `  wisp invoke hello
  wisp invoke hello /greet?name=Go -H 'Accept: text/plain'
  wisp invoke orders /orders -d @order.json -H 'Content-Type: application/json'
  echo '{"n":1}' | wisp invoke orders /orders -d @-
  wisp invoke resize /jobs -d @photo.jpg --async --idempotency-key photo-42
  wisp invoke resize /jobs -d @photo.jpg --async --wait --timeout 2m
  wisp invoke hello --router http://127.0.0.1:8080`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/"
			if len(args) == 2 {
				path = args[1]
			}
			if wait && !async {
				return usagef("--wait needs --async (a sync call waits anyway)")
			}
			if !async && (idemKey != "" || callback != "") {
				return usagef("--idempotency-key and --callback need --async")
			}
			if timeout <= 0 {
				return usagef("--timeout must be positive, got %s", timeout)
			}
			header, err := parseHeaders(headers)
			if err != nil {
				return err
			}
			inv := apiclient.Invocation{Method: strings.ToUpper(method), Header: header,
				IdempotencyKey: idemKey, Callback: callback}
			if cmd.Flags().Changed("data") {
				if inv.Body, err = readData("-d", data, cmd.InOrStdin()); err != nil {
					return err
				}
			}
			svcURL := ""
			if router == "" {
				sv, err := a.client().GetService(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				svcURL = sv.URL
			}
			if inv.URL, err = apiclient.RouterURL(router, args[0], svcURL, path, async); err != nil {
				return err
			}
			if !async {
				return a.invokeSync(cmd.Context(), inv)
			}
			sub, err := a.client().InvokeAsync(cmd.Context(), inv)
			if err != nil {
				return err
			}
			if !wait {
				return a.emit(sub, func() error {
					dup := ""
					if sub.Duplicate {
						dup = " (an earlier submission with this idempotency key)"
					}
					fmt.Fprintf(a.stdout, "Submitted async call %s of %s%s\nRead it with: wisp calls get %s\n", sub.ID, args[0], dup, sub.ID)
					return nil
				})
			}
			c, err := a.waitCall(cmd.Context(), sub.ID, timeout, pollInterval)
			if err != nil {
				return err
			}
			return a.printCallResult(c)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&method, "request", "X", "", "HTTP method (default GET, or POST with -d)")
	f.StringVarP(&data, "data", "d", "", "request body: TEXT, @FILE, or @- for standard input")
	f.StringArrayVarP(&headers, "header", "H", nil, "request header 'Name: value' (repeatable)")
	f.BoolVar(&async, "async", false, "submit an async call and print its ID instead of waiting for the answer")
	f.StringVar(&idemKey, "idempotency-key", "", "with --async: a key that makes a repeated submission return the first call")
	f.StringVar(&callback, "callback", "", "with --async: a URL Wisp POSTs the call's result to when it is done")
	f.BoolVar(&wait, "wait", false, "with --async: poll the call until it is done and print its answer")
	f.DurationVar(&timeout, "timeout", 5*time.Minute, "with --wait: give up waiting after this long (the call goes on)")
	f.DurationVar(&pollInterval, "poll-interval", time.Second, "with --wait: how often to read the call")
	_ = f.MarkHidden("poll-interval")
	f.StringVar(&router, "router", a.getenv(EnvRouter), "the router's address (such as http://127.0.0.1:8080), when the service's host does not resolve (env "+EnvRouter+")")
	return cmd
}

// parseHeaders reads -H 'Name: value' flags.
func parseHeaders(hs []string) (http.Header, error) {
	h := http.Header{}
	for _, s := range hs {
		k, v, ok := strings.Cut(s, ":")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, usagef("-H %q is not 'Name: value'", s)
		}
		h.Add(k, strings.TrimSpace(v))
	}
	return h, nil
}

// readData reads a body flag's value: the text itself, @FILE, or @- for
// stdin.
func readData(flag, v string, stdin io.Reader) ([]byte, error) {
	name, ok := strings.CutPrefix(v, "@")
	switch {
	case !ok:
		return []byte(v), nil
	case name == "-":
		b, err := io.ReadAll(io.LimitReader(stdin, maxInvokeBody))
		if err != nil {
			return nil, fmt.Errorf("%s @-: read standard input: %w", flag, err)
		}
		return b, nil
	}
	b, err := os.ReadFile(name) //nolint:gosec // G304: the user names the file to send
	if err != nil {
		return nil, usagef("%s @%s: %v", flag, name, errors.Unwrap(err))
	}
	return b, nil
}

// invokeSync sends inv and prints the answer.
func (a *app) invokeSync(ctx context.Context, inv apiclient.Invocation) error {
	resp, err := a.client().Invoke(ctx, inv)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxInvokeBody))
	if err != nil {
		return fmt.Errorf("read the answer: %w", err)
	}
	return a.printAnswer(resp.StatusCode, resp.Header, body)
}

// printAnswer prints a service's answer: the body on stdout, the status on
// stderr when it is not 2xx, and an error for 400 or more (exit code 1).
func (a *app) printAnswer(status int, header http.Header, body []byte) error {
	text := fmt.Sprintf("%d %s", status, http.StatusText(status))
	err := a.emit(answerJSON(status, header, body), func() error {
		if status < 200 || status > 299 {
			fmt.Fprintln(a.stderr, "HTTP", text)
		}
		_, err := a.stdout.Write(body)
		return err
	})
	if err != nil {
		return err
	}
	if status >= 400 {
		return fmt.Errorf("the service answered %s", text)
	}
	return nil
}

// answerJSON is an answer for -o json: the body as text when it is UTF-8,
// else as base64 in body_base64.
func answerJSON(status int, header http.Header, body []byte) map[string]any {
	out := map[string]any{"status": status, "header": header}
	if utf8.Valid(body) {
		out["body"] = string(body)
	} else {
		out["body_base64"] = body
	}
	return out
}

// waitCall polls call id until it is done or timeout has passed.
func (a *app) waitCall(ctx context.Context, id string, timeout, every time.Duration) (core.Call, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := a.client()
	tick := time.NewTicker(every)
	defer tick.Stop()
	var last core.Call // the call as last read, for the state a timeout reports
	for {
		call, err := c.GetCall(ctx, id)
		if err == nil {
			last = call
		}
		switch {
		case err == nil && call.Done():
			return call, nil
		case ctx.Err() != nil:
			state := "not done"
			if last.State != "" {
				state = last.State
			}
			return last, fmt.Errorf("call %s is still %s after %s; it goes on: read it later with: wisp calls get %s", id, state, timeout, id)
		case err != nil:
			return call, err
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

// printCallResult prints the answer of a done call, as a sync call would.
func (a *app) printCallResult(c core.Call) error {
	if a.output == "json" {
		if err := a.printJSON(c); err != nil {
			return err
		}
	}
	if c.Response != nil {
		if a.output != "json" {
			if c.Response.Status < 200 || c.Response.Status > 299 {
				fmt.Fprintf(a.stderr, "HTTP %d %s\n", c.Response.Status, http.StatusText(c.Response.Status))
			}
			if _, err := a.stdout.Write(c.Response.Body); err != nil {
				return err
			}
		}
	}
	if c.State != core.CallSucceeded {
		msg := fmt.Sprintf("call %s is %s", c.ID, c.State)
		if c.Error != "" {
			msg += ": " + c.Error
		}
		return fmt.Errorf("%s (see wisp calls get %s; wisp calls retry %s queues it again)", msg, c.ID, c.ID)
	}
	return nil
}
