package cloudevent_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/cloudevent"
	"github.com/wisp-run/wisp/internal/core"
)

// valid is an event with every attribute set, changed by each case.
func valid() cloudevent.Event {
	return cloudevent.Event{
		ID:              "A234-1234-1234",
		Source:          "https://github.com/cloudevents/spec/pull",
		SpecVersion:     "1.0",
		Type:            "com.example.order.created",
		DataContentType: "application/json",
		DataSchema:      "https://example.com/schemas/order.json",
		Subject:         "order/123",
		Time:            time.Date(2026, 12, 2, 16, 20, 0, 123456789, time.UTC),
		Extensions:      map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "comexampleothervalue": "5"},
		Data:            []byte(`{"order":123}`),
	}
}

// wantErr checks that err is a *core.Error of kind ErrInvalid for field
// whose message contains msg; an empty msg means no error.
func wantErr(t testing.TB, err error, field, msg string) {
	t.Helper()
	if msg == "" {
		if err != nil {
			t.Fatalf("got error %v, want none", err)
		}
		return
	}
	var ce *core.Error
	if !errors.As(err, &ce) || !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("got error %v (%T), want a *core.Error of kind invalid", err, err)
	}
	if ce.Field != field || !strings.Contains(ce.Message, msg) || !strings.HasPrefix(ce.Message, "cloudevent: ") {
		t.Fatalf("got error field %q message %q, want field %q and a message containing %q", ce.Field, ce.Message, field, msg)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name   string
		change func(e *cloudevent.Event)
		field  string
		msg    string
	}{
		{"every attribute", func(e *cloudevent.Event) {}, "", ""},
		{"only the required ones", func(e *cloudevent.Event) {
			*e = cloudevent.Event{ID: "1", Source: "/s", SpecVersion: "1.0", Type: "t"}
		}, "", ""},
		{"source is a relative reference", func(e *cloudevent.Event) { e.Source = "/mycontext" }, "", ""},
		{"source is a URN", func(e *cloudevent.Event) { e.Source = "urn:event:from:myapi/resource/123" }, "", ""},
		{"source is mailto", func(e *cloudevent.Event) { e.Source = "mailto:cncf-wg-serverless@lists.cncf.io" }, "", ""},
		{"source with an escape", func(e *cloudevent.Event) { e.Source = "/a%20b" }, "", ""},
		{"unicode id type and subject", func(e *cloudevent.Event) { e.ID, e.Type, e.Subject = "ид 1", "com.exämple", "日本 語" }, "", ""},
		{"extension name of 21 characters", func(e *cloudevent.Event) { e.Extensions = map[string]string{"abcdefghijklmnopqrstu": "x"} }, "", ""},
		{"empty extension value", func(e *cloudevent.Event) { e.Extensions = map[string]string{"empty": ""} }, "", ""},
		{"datacontenttype with parameters", func(e *cloudevent.Event) { e.DataContentType = "text/plain; charset=utf-8" }, "", ""},
		{"time in another zone", func(e *cloudevent.Event) { e.Time = time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("x", 3600)) }, "", ""},

		{"missing id", func(e *cloudevent.Event) { e.ID = "" }, "id", `required attribute "id" is missing`},
		{"missing source", func(e *cloudevent.Event) { e.Source = "" }, "source", `required attribute "source" is missing`},
		{"missing specversion", func(e *cloudevent.Event) { e.SpecVersion = "" }, "specversion", `required attribute "specversion" is missing`},
		{"missing type", func(e *cloudevent.Event) { e.Type = "" }, "type", `required attribute "type" is missing`},
		{"specversion 0.3", func(e *cloudevent.Event) { e.SpecVersion = "0.3" }, "specversion", `attribute "specversion" is "0.3"; Wisp accepts "1.0"`},
		{"specversion 1.0.2", func(e *cloudevent.Event) { e.SpecVersion = "1.0.2" }, "specversion", `attribute "specversion" is "1.0.2"`},
		{"source with a space", func(e *cloudevent.Event) { e.Source = "/my context" }, "source", `not a URI-reference: " " must be %-encoded`},
		{"source with a bad escape", func(e *cloudevent.Event) { e.Source = "/a%2" }, "source", `not a URI-reference: bad %-escape`},
		{"source with non-ASCII", func(e *cloudevent.Event) { e.Source = "/café" }, "source", "not a URI-reference"},
		{"source with a bad host", func(e *cloudevent.Event) { e.Source = "http://[::1/x" }, "source", "not a URI-reference"},
		{"relative dataschema", func(e *cloudevent.Event) { e.DataSchema = "/schemas/order.json" }, "dataschema", "must be an absolute URI"},
		{"dataschema with a space", func(e *cloudevent.Event) { e.DataSchema = "https://x/a b" }, "dataschema", "not a URI-reference"},
		{"bad datacontenttype", func(e *cloudevent.Event) { e.DataContentType = "json" }, "datacontenttype", `attribute "datacontenttype" is "json", not a media type`},
		{"time after 9999", func(e *cloudevent.Event) { e.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "time", "year 10000"},
		{"time before 0000", func(e *cloudevent.Event) { e.Time = time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC) }, "time", "year -1"},
		{"extension with upper case", func(e *cloudevent.Event) { e.Extensions = map[string]string{"traceParent": "x"} }, "traceParent", `attribute name "traceParent" has 'P'`},
		{"extension with a dash", func(e *cloudevent.Event) { e.Extensions = map[string]string{"my-ext": "x"} }, "my-ext", `has '-'`},
		{"extension with an underscore", func(e *cloudevent.Event) { e.Extensions = map[string]string{"data_base64": "x"} }, "data_base64", `has '_'`},
		{"extension with non-ASCII", func(e *cloudevent.Event) { e.Extensions = map[string]string{"ä": "x"} }, "ä", "names are lower-case letters a-z and digits 0-9"},
		{"extension with an empty name", func(e *cloudevent.Event) { e.Extensions = map[string]string{"": "x"} }, "", "attribute name is empty"},
		{"extension named type", func(e *cloudevent.Event) { e.Extensions = map[string]string{"type": "x"} }, "type", `extension attribute "type" has a reserved name`},
		{"extension named data", func(e *cloudevent.Event) { e.Extensions = map[string]string{"data": "x"} }, "data", "reserved name"},
		{"extension named time", func(e *cloudevent.Event) { e.Extensions = map[string]string{"time": "x"} }, "time", "reserved name"},
		{"extension value not UTF-8", func(e *cloudevent.Event) { e.Extensions = map[string]string{"x": "a\xffb"} }, "x", `attribute "x" is not valid UTF-8`},
		{"id not UTF-8", func(e *cloudevent.Event) { e.ID = "\xc3" }, "id", `attribute "id" is not valid UTF-8`},
		{"subject with a newline", func(e *cloudevent.Event) { e.Subject = "a\nb" }, "subject", "control character U+000A"},
		{"type with DEL", func(e *cloudevent.Event) { e.Type = "a\x7f" }, "type", "control character U+007F"},
		{"type with a C1 control", func(e *cloudevent.Event) { e.Type = "a\u0085" }, "type", "control character U+0085"},
		{"subject with a noncharacter", func(e *cloudevent.Event) { e.Subject = "a\uFFFE" }, "subject", "noncharacter U+FFFE"},
		{"subject with an encoded U+FFFD is fine", func(e *cloudevent.Event) { e.Subject = "a\uFFFD" }, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := valid()
			tc.change(&e)
			wantErr(t, e.Validate(), tc.field, tc.msg)
		})
	}
}

func TestDedupKey(t *testing.T) {
	e := valid()
	key := cloudevent.DedupKey(e)
	if len(key) != 32 || strings.Trim(key, "0123456789abcdef") != "" {
		t.Fatalf("got key %q, want 32 lower-case hex digits", key)
	}
	cases := []struct {
		name string
		a, b cloudevent.Event
		same bool
	}{
		{"a copy", e, e, true},
		{"other attributes do not count", e, cloudevent.Event{Source: e.Source, ID: e.ID, Type: "other"}, true},
		{"another id", e, cloudevent.Event{Source: e.Source, ID: "other"}, false},
		{"another source", e, cloudevent.Event{Source: "/other", ID: e.ID}, false},
		{"the separator keeps source and id apart", cloudevent.Event{Source: "ab", ID: "c"}, cloudevent.Event{Source: "a", ID: "bc"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := cloudevent.DedupKey(tc.a) == cloudevent.DedupKey(tc.b); got != tc.same {
				t.Fatalf("keys %s and %s: same is %v, want %v", cloudevent.DedupKey(tc.a), cloudevent.DedupKey(tc.b), got, tc.same)
			}
		})
	}
	// The key is stable across releases: it names messages already in NATS.
	if got, want := cloudevent.DedupKey(cloudevent.Event{Source: "/s", ID: "1"}), "f8367ecadcd04ac0e0df60440a61004d"; got != want {
		t.Fatalf("got key %q, want %q", got, want)
	}
}
