package cli

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wisp-run/wisp/internal/core"
)

func (a *app) triggerCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "trigger",
		Aliases: []string{"triggers"},
		Short:   "Call a service for the CloudEvents published on a subject",
		Long: `A trigger makes an async call of a service for every CloudEvent published
on a subject that matches its pattern and passes its filters. Events are
published with "wisp event publish" or POST /v1/events. The event is POSTed
to the service in binary mode (its attributes as ce-* headers), with the
retries of any async call; "wisp trigger get" shows the recent deliveries.`,
	}
	cmd.AddCommand(a.triggerCreate(), a.triggerList(), a.triggerGet(), a.triggerDelete())
	return cmd
}

func (a *app) triggerCreate() *cobra.Command {
	var (
		t       core.Trigger
		filters []string
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a trigger",
		Long: `Create a trigger: every event published on a subject matching --subject
(a NATS pattern: "*" matches one token, ">" the rest) and passing every
--filter becomes an async call of --service.

A filter tests a CloudEvents attribute (type, source or subject):
"type=com.example.created" is an exact match, "source^=/orders/" a prefix.`,
		Example: `  wisp trigger create new-orders --service mailer --subject 'orders.>'
  wisp trigger create eu-orders --service mailer --subject 'orders.*' --filter 'source^=/eu/' --path /events
  wisp trigger create canary-orders --service mailer --subject orders.created --tag canary --filter type=com.example.order.created`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := required(cmd, "service", "subject"); err != nil {
				return err
			}
			t.Name, t.Filters = args[0], filters
			out, err := a.client().CreateTrigger(cmd.Context(), t)
			if err != nil {
				return err
			}
			return a.emit(out, func() error {
				fmt.Fprintf(a.stdout, "Created trigger %s: events on %s call %s\nTry it: wisp event publish %s --type TYPE --source /cli -d '{}'\n",
					out.Name, out.Subject, out.Service, exampleSubject(out.Subject))
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&t.Service, "service", "", "the service to call (required)")
	f.StringVar(&t.Subject, "subject", "", "the subject pattern to follow, such as 'orders.>' (required)")
	f.StringVar(&t.Tag, "tag", "", "call this tag or version (canary, v3) instead of the traffic split")
	f.StringVar(&t.Path, "path", "", "the path events are POSTed to (default /)")
	f.StringArrayVar(&filters, "filter", nil, "only events whose attribute matches: 'type=X' (exact) or 'source^=/prefix' (repeatable; all must match)")
	return cmd
}

// required fails, naming them, when flags that must be given are not.
func required(cmd *cobra.Command, flags ...string) error {
	var missing []string
	for _, f := range flags {
		if !cmd.Flags().Changed(f) {
			missing = append(missing, "--"+f)
		}
	}
	if len(missing) > 0 {
		return usagef("%s %s required", strings.Join(missing, " and "), map[bool]string{true: "is", false: "are"}[len(missing) == 1])
	}
	return nil
}

// exampleSubject turns a pattern into a subject it matches.
func exampleSubject(pattern string) string {
	toks := strings.Split(pattern, ".")
	for i, t := range toks {
		switch t {
		case "*":
			toks[i] = "example"
		case ">":
			toks[i] = "example"
		}
	}
	return strings.Join(toks, ".")
}

func (a *app) triggerList() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List triggers",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := a.client().ListTriggers(cmd.Context())
			if err != nil {
				return err
			}
			return a.emit(list, func() error {
				if len(list) == 0 {
					fmt.Fprintln(a.stdout, "No triggers yet. Create one with: wisp trigger create NAME --service SERVICE --subject 'orders.>'")
					return nil
				}
				rows := make([][]string, 0, len(list))
				for _, t := range list {
					rows = append(rows, []string{t.Name, t.Service, t.Subject, orDash(t.Tag), pathOr(t.Path),
						orDash(strings.Join(t.Filters, " ")), ago(t.CreatedAt)})
				}
				return a.table([]string{"NAME", "SERVICE", "SUBJECT", "TAG", "PATH", "FILTERS", "CREATED"}, rows)
			})
		},
	}
}

func pathOr(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

func (a *app) triggerGet() *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show a trigger and its recent deliveries",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := a.client().GetTrigger(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.emit(t, func() error {
				err := a.fields([][2]string{{"Name", t.Name}, {"Service", t.Service}, {"Subject", t.Subject},
					{"Tag", orDash(t.Tag)}, {"Path", pathOr(t.Path)}, {"Filters", orDash(strings.Join(t.Filters, " "))},
					{"Created", stamp(t.CreatedAt)}})
				if err != nil {
					return err
				}
				if len(t.Deliveries) == 0 {
					fmt.Fprintln(a.stdout, "\nNo deliveries yet.")
					return nil
				}
				fmt.Fprintln(a.stdout, "\nRecent deliveries:")
				return a.callTable(t.Deliveries)
			})
		},
	}
}

func (a *app) triggerDelete() *cobra.Command {
	return &cobra.Command{
		Use:     "delete NAME",
		Aliases: []string{"rm"},
		Short:   "Delete a trigger (the calls it made are kept)",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.client().DeleteTrigger(cmd.Context(), args[0]); err != nil {
				return err
			}
			return a.emit(map[string]string{"deleted": args[0]}, func() error {
				fmt.Fprintf(a.stdout, "Deleted trigger %s\n", args[0])
				return nil
			})
		},
	}
}

func (a *app) eventCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "event",
		Aliases: []string{"events"},
		Short:   "Publish CloudEvents for triggers",
	}
	cmd.AddCommand(a.eventPublish())
	return cmd
}

func (a *app) eventPublish() *cobra.Command {
	var (
		typ, source, id, data, ctype, subject string
		exts                                  []string
	)
	cmd := &cobra.Command{
		Use:   "publish SUBJECT",
		Short: "Publish a CloudEvent on a subject; matching triggers call their services",
		Long: `Publish a CloudEvent (https://cloudevents.io, version 1.0) on SUBJECT, sent
in binary mode: the attributes as ce-* headers, -d as the body. Every trigger
whose subject pattern matches and whose filters pass makes an async call.

--id defaults to a random one; an event with the same source and id as one
published shortly before is taken for a repeat and not delivered twice.
--content-type defaults to application/json when -d is given.`,
		Example: `  wisp event publish orders.created --type com.example.order.created --source /shop -d '{"order":42}'
  wisp event publish orders.created --type com.example.order.created --source /shop -d @order.json --id order-42
  wisp event publish logs.line --type com.example.line --source /cli -d 'hello' --content-type text/plain`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := required(cmd, "type", "source"); err != nil {
				return err
			}
			var body []byte
			if cmd.Flags().Changed("data") {
				var err error
				if body, err = readData("-d", data, cmd.InOrStdin()); err != nil {
					return err
				}
				if ctype == "" {
					ctype = "application/json"
				}
			}
			if id == "" {
				b := make([]byte, 16)
				_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24)
				id = hex.EncodeToString(b)
			}
			h := http.Header{}
			set := func(name, v string) { h.Set("ce-"+name, ceEncode(v)) }
			set("specversion", "1.0")
			set("id", id)
			set("source", source)
			set("type", typ)
			if subject != "" {
				set("subject", subject)
			}
			for _, e := range exts {
				k, v, ok := strings.Cut(e, "=")
				if !ok || k == "" {
					return usagef("--ext %q is not NAME=VALUE", e)
				}
				set(strings.ToLower(k), v)
			}
			out, err := a.client().PublishEvent(cmd.Context(), args[0], ctype, h, body)
			if err != nil {
				return err
			}
			return a.emit(out, func() error {
				fmt.Fprintf(a.stdout, "Published event %s on %s\nSee what it called: wisp trigger list, then wisp trigger get NAME\n", orDash(out.ID), orDash(out.Subject))
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&typ, "type", "", "the event's type, such as com.example.order.created (required)")
	f.StringVar(&source, "source", "", "the event's source, a URI reference such as /shop (required)")
	f.StringVar(&id, "id", "", "the event's id (default: a random one)")
	f.StringVar(&subject, "event-subject", "", "the event's own subject attribute (what it is about, such as order/42)")
	f.StringArrayVar(&exts, "ext", nil, "an extension attribute NAME=VALUE (repeatable)")
	f.StringVarP(&data, "data", "d", "", "the event's data: TEXT, @FILE, or @- for standard input")
	f.StringVar(&ctype, "content-type", "", "the data's media type (default application/json with -d)")
	return cmd
}

// ceEncode percent-encodes a binary-mode attribute value: space, '"', '%'
// and anything outside printable ASCII (http-protocol-binding.md, 3.1.3.2).
func ceEncode(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '%' {
			b.WriteString("%" + strings.ToUpper(strconv.FormatInt(int64(c)|0x100, 16)[1:]))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
