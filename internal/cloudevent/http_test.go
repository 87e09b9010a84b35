package cloudevent_test

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wisp-run/wisp/internal/cloudevent"
)

// binaryHeader is the header of a binary event with the required
// attributes, plus kv (name, value pairs; an empty value deletes).
func binaryHeader(kv ...string) http.Header {
	h := http.Header{}
	h.Set("Ce-Specversion", "1.0")
	h.Set("Ce-Id", "1")
	h.Set("Ce-Source", "/s")
	h.Set("Ce-Type", "t")
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			h.Del(kv[i])
			continue
		}
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func TestFromHTTPBinary(t *testing.T) {
	base := cloudevent.Event{ID: "1", Source: "/s", SpecVersion: "1.0", Type: "t"}
	with := func(change func(e *cloudevent.Event)) cloudevent.Event {
		e := base
		change(&e)
		return e
	}
	cases := []struct {
		name   string
		header http.Header
		body   string
		want   cloudevent.Event
	}{
		{"required attributes only", binaryHeader(), "", base},
		{"every attribute", binaryHeader(
			"Ce-Subject", "order/123", "Ce-Time", "2026-12-02T17:20:00.5+01:00",
			"Ce-Dataschema", "https://example.com/s.json", "Ce-Traceparent", "00-ab-cd-01",
			"Content-Type", "application/json"), `{"a": 1}`,
			with(func(e *cloudevent.Event) {
				e.Subject, e.DataSchema = "order/123", "https://example.com/s.json"
				e.Time = time.Date(2026, 12, 2, 16, 20, 0, 5e8, time.UTC)
				e.Extensions = map[string]string{"traceparent": "00-ab-cd-01"}
				e.DataContentType, e.Data = "application/json", []byte(`{"a": 1}`)
			})},
		{"header names in any case", http.Header{"ce-specversion": {"1.0"}, "CE-ID": {"1"}, "Ce-SOURCE": {"/s"}, "ce-Type": {"t"}, "cE-MyExt": {"v"}}, "",
			with(func(e *cloudevent.Event) { e.Extensions = map[string]string{"myext": "v"} })},
		{"percent-decoded values", binaryHeader("Ce-Subject", "a%20b%22c%25d%C3%A9", "Ce-Id", "%E2%82%AC%f0%9f%98%80"), "",
			with(func(e *cloudevent.Event) { e.Subject, e.ID = `a b"c%dé`, "€😀" })},
		{"a plus stays a plus", binaryHeader("Ce-Subject", "a+b"), "",
			with(func(e *cloudevent.Event) { e.Subject = "a+b" })},
		{"raw UTF-8 in a header", binaryHeader("Ce-Subject", "é"), "",
			with(func(e *cloudevent.Event) { e.Subject = "é" })},
		{"empty extension", http.Header{"Ce-Specversion": {"1.0"}, "Ce-Id": {"1"}, "Ce-Source": {"/s"}, "Ce-Type": {"t"}, "Ce-Empty": {""}}, "",
			with(func(e *cloudevent.Event) { e.Extensions = map[string]string{"empty": ""} })},
		{"binary data with its type", binaryHeader("Content-Type", "application/octet-stream"), "\x00\xff",
			with(func(e *cloudevent.Event) { e.DataContentType, e.Data = "application/octet-stream", []byte("\x00\xff") })},
		{"data without a type", binaryHeader(), "hello",
			with(func(e *cloudevent.Event) { e.Data = []byte("hello") })},
		{"other headers are not attributes", binaryHeader("Content-Length", "0", "Cex-Id", "9", "X-Ce-Id", "9"), "", base},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cloudevent.FromHTTP(tc.header, []byte(tc.body))
			if err != nil {
				t.Fatalf("FromHTTP: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("event (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFromHTTPStructured(t *testing.T) {
	h := http.Header{"Content-Type": {"application/cloudevents+json; charset=UTF-8"}, "Ce-Id": {"ignored"}}
	body := `{
		"specversion": "1.0", "id": "A234", "source": "/mycontext", "type": "com.example.someevent",
		"time": "2018-04-05T17:31:00Z", "subject": null, "unsetextension": null,
		"comexampleextension1": "value", "comexampleothervalue": 5, "flag": true,
		"data": {"appinfoA": "abc",  "appinfoB": 123}
	}`
	got, err := cloudevent.FromHTTP(h, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want := cloudevent.Event{
		ID: "A234", Source: "/mycontext", SpecVersion: "1.0", Type: "com.example.someevent",
		Time:            time.Date(2018, 4, 5, 17, 31, 0, 0, time.UTC),
		Extensions:      map[string]string{"comexampleextension1": "value", "comexampleothervalue": "5", "flag": "true"},
		DataContentType: "application/json",
		Data:            []byte(`{"appinfoA": "abc",  "appinfoB": 123}`),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("event (-want +got):\n%s", diff)
	}
}

func TestFromHTTPErrors(t *testing.T) {
	structured := http.Header{"Content-Type": {cloudevent.MediaType}}
	const req = `"specversion":"1.0","id":"1","source":"/s","type":"t"`
	cases := []struct {
		name   string
		header http.Header
		body   string
		field  string
		msg    string
	}{
		// Binary mode.
		{"neither mode", http.Header{"Content-Type": {"application/json"}}, `{}`, "specversion",
			"the request is neither a structured nor a binary CloudEvent: send the event as JSON with Content-Type: application/cloudevents+json, or its attributes as headers ce-specversion: 1.0"},
		{"no headers at all", http.Header{}, "", "specversion", "neither a structured nor a binary CloudEvent"},
		{"binary without id", binaryHeader("Ce-Id", ""), "", "id", `required attribute "id" is missing`},
		{"binary without source", binaryHeader("Ce-Source", ""), "", "source", `required attribute "source" is missing`},
		{"binary without type", binaryHeader("Ce-Type", ""), "", "type", `required attribute "type" is missing`},
		{"binary with an empty id", binaryHeader("Ce-Id", "%41", "Ce-Id", ""), "", "id", `required attribute "id" is missing`},
		{"binary specversion 0.3", binaryHeader("Ce-Specversion", "0.3"), "", "specversion", `attribute "specversion" is "0.3"; Wisp accepts "1.0"`},
		{"bad percent-encoding", binaryHeader("Ce-Type", "a%zzb"), "", "type", `header ce-type: bad percent-encoding "%zz"`},
		{"percent at the end", binaryHeader("Ce-Type", "a%"), "", "type", `header ce-type: bad percent-encoding "%"`},
		{"percent and one digit at the end", binaryHeader("Ce-Subject", "a%4"), "", "subject", `header ce-subject: bad percent-encoding "%4"`},
		{"invalid UTF-8 after decoding", binaryHeader("Ce-Type", "a%C3"), "", "type", "header ce-type: value is not valid UTF-8 after percent-decoding"},
		{"invalid UTF-8 raw", binaryHeader("Ce-Type", "a\xff"), "", "type", "header ce-type: value is not valid UTF-8"},
		{"decoded control character", binaryHeader("Ce-Subject", "a%0Ab"), "", "subject", "control character U+000A"},
		{"bad extension header name", binaryHeader("Ce-My-Ext", "v"), "", "my-ext", `header ce-my-ext: attribute name "my-ext"`},
		{"empty attribute name", binaryHeader("Ce-", "v"), "", "", "header ce-: attribute name"},
		{"extension named data", binaryHeader("Ce-Data", "v"), "", "data", `extension attribute "data" has a reserved name`},
		{"datacontenttype as a header", binaryHeader("Ce-Datacontenttype", "text/plain"), "", "datacontenttype", "in binary mode the datacontenttype is the Content-Type header"},
		{"header twice", func() http.Header { h := binaryHeader(); h.Add("Ce-Id", "2"); return h }(), "", "id", "header ce-id appears 2 times"},
		{"header twice in two spellings", func() http.Header { h := binaryHeader(); h["ce-id"] = []string{"2"}; return h }(), "", "id", "header ce-id appears 2 times"},
		{"bad time", binaryHeader("Ce-Time", "yesterday"), "", "time", `attribute "time" is "yesterday", not an RFC 3339 timestamp`},
		{"time without a zone", binaryHeader("Ce-Time", "2026-01-01T00:00:00"), "", "time", "not an RFC 3339 timestamp"},
		{"time with a bad hour", binaryHeader("Ce-Time", "2026-01-01T24:00:00Z"), "", "time", "not an RFC 3339 timestamp"},
		{"empty subject", http.Header{"Ce-Specversion": {"1.0"}, "Ce-Id": {"1"}, "Ce-Source": {"/s"}, "Ce-Type": {"t"}, "Ce-Subject": {""}}, "", "subject", `attribute "subject" is present but empty`},
		{"bad Content-Type", binaryHeader("Content-Type", "no type"), "x", "datacontenttype", "not a media type"},
		{"bad source", binaryHeader("Ce-Source", "a b"), "", "source", "not a URI-reference"},
		{"relative dataschema", binaryHeader("Ce-Dataschema", "/x"), "", "dataschema", "absolute URI"},

		// Content types.
		{"batch", http.Header{"Content-Type": {cloudevent.BatchMediaType}}, `[]`, "datacontenttype", "a batch of events (Content-Type application/cloudevents-batch+json) is not accepted here"},
		{"XML format", http.Header{"Content-Type": {"application/cloudevents+xml"}}, `<x/>`, "datacontenttype", `Content-Type "application/cloudevents+xml" is an event format Wisp does not read`},
		{"no format", http.Header{"Content-Type": {"application/cloudevents"}}, `{}`, "datacontenttype", "event format Wisp does not read"},
		{"charset latin1", http.Header{"Content-Type": {"application/cloudevents+json; charset=latin1"}}, `{}`, "datacontenttype", `has charset "latin1"`},

		// Structured mode.
		{"structured without id", structured, `{"specversion":"1.0","source":"/s","type":"t"}`, "id", `required attribute "id" is missing`},
		{"structured without source", structured, `{"specversion":"1.0","id":"1","type":"t"}`, "source", `required attribute "source" is missing`},
		{"structured without specversion", structured, `{"id":"1","source":"/s","type":"t"}`, "specversion", `required attribute "specversion" is missing`},
		{"structured without type", structured, `{"specversion":"1.0","id":"1","source":"/s"}`, "type", `required attribute "type" is missing`},
		{"structured with a null id", structured, `{"specversion":"1.0","id":null,"source":"/s","type":"t"}`, "id", `required attribute "id" is missing`},
		{"structured specversion 0.3", structured, `{"specversion":"0.3","id":"1","source":"/s","type":"t"}`, "specversion", `"0.3"; Wisp accepts "1.0"`},
		{"structured specversion a number", structured, `{"specversion":1.0,"id":"1","source":"/s","type":"t"}`, "specversion", `attribute "specversion" must be a JSON string, got a number`},
		{"id a number", structured, `{"specversion":"1.0","id":1,"source":"/s","type":"t"}`, "id", `attribute "id" must be a JSON string, got a number`},
		{"type an object", structured, `{"specversion":"1.0","id":"1","source":"/s","type":{}}`, "type", `attribute "type" must be a JSON string, got an object`},
		{"subject a boolean", structured, `{` + req + `,"subject":true}`, "subject", `attribute "subject" must be a JSON string, got a boolean`},
		{"time an array", structured, `{` + req + `,"time":[]}`, "time", "got an array"},
		{"bad time", structured, `{` + req + `,"time":"2026-13-01T00:00:00Z"}`, "time", `attribute "time" is "2026-13-01T00:00:00Z", not an RFC 3339 timestamp`},
		{"empty subject", structured, `{` + req + `,"subject":""}`, "subject", "present but empty"},
		{"data and data_base64", structured, `{` + req + `,"data":{},"data_base64":"AA=="}`, "data", `the event has both "data" and "data_base64"; send one`},
		{"data_base64 not base64", structured, `{` + req + `,"data_base64":"%%%"}`, "data_base64", `member "data_base64" is not base64`},
		{"data_base64 a number", structured, `{` + req + `,"data_base64":5}`, "data_base64", "must be a JSON string of base64, got a number"},
		{"extension an object", structured, `{` + req + `,"ext":{"a":1}}`, "ext", `extension attribute "ext" must be a string, a number or a boolean, got an object`},
		{"extension an array", structured, `{` + req + `,"ext":[1]}`, "ext", "got an array"},
		{"extension a fraction", structured, `{` + req + `,"ext":1.5}`, "ext", `extension attribute "ext" is the number 1.5; a number must be an integer`},
		{"extension too large", structured, `{` + req + `,"ext":2147483648}`, "ext", "is the number 2147483648"},
		{"extension with upper case", structured, `{` + req + `,"myExt":"x"}`, "myExt", `attribute name "myExt" has 'E'`},
		{"extension with an underscore", structured, `{` + req + `,"my_ext":"x"}`, "my_ext", `has '_'`},
		{"member twice", structured, `{` + req + `,"id":"2"}`, "id", `member "id" appears twice`},
		{"not an object", structured, `[]`, "", "a structured event must be a JSON object, got an array"},
		{"a string", structured, `"x"`, "", "got a string"},
		{"empty body", structured, ``, "", "malformed JSON: the event ends early"},
		{"cut short", structured, `{"id":"1"`, "", "malformed JSON"},
		{"syntax error", structured, `{"id" "1"}`, "", "malformed JSON at byte"},
		{"trailing data", structured, `{` + req + `} {}`, "", "unexpected data after the JSON object"},
		{"invalid UTF-8", structured, `{` + req + `,"subject":"a` + "\xff" + `"}`, "", "not valid UTF-8"},
		{"control character in a string", structured, `{` + req + `,"subject":"a\u0007"}`, "subject", "control character U+0007"},
		{"bad dataschema", structured, `{` + req + `,"dataschema":"x"}`, "dataschema", "absolute URI"},
		{"bad datacontenttype", structured, `{` + req + `,"datacontenttype":"json","data":1}`, "datacontenttype", "not a media type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := cloudevent.FromHTTP(tc.header, []byte(tc.body))
			wantErr(t, err, tc.field, tc.msg)
			if diff := cmp.Diff(cloudevent.Event{}, e); diff != "" {
				t.Fatalf("event with the error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestToHTTP(t *testing.T) {
	cases := []struct {
		name string
		e    cloudevent.Event
		want http.Header
	}{
		{"every attribute", valid(), http.Header{
			"Ce-Id": {"A234-1234-1234"}, "Ce-Source": {"https://github.com/cloudevents/spec/pull"}, "Ce-Specversion": {"1.0"},
			"Ce-Type": {"com.example.order.created"}, "Ce-Subject": {"order/123"}, "Ce-Time": {"2026-12-02T16:20:00.123456789Z"},
			"Ce-Dataschema": {"https://example.com/schemas/order.json"}, "Ce-Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
			"Ce-Comexampleothervalue": {"5"}, "Content-Type": {"application/json"},
		}},
		{"required only, time in UTC", cloudevent.Event{ID: "1", Source: "/s", SpecVersion: "1.0", Type: "t",
			Time: time.Date(2026, 1, 1, 1, 0, 0, 0, time.FixedZone("x", 3600))}, http.Header{
			"Ce-Id": {"1"}, "Ce-Source": {"/s"}, "Ce-Specversion": {"1.0"}, "Ce-Type": {"t"}, "Ce-Time": {"2026-01-01T00:00:00Z"},
		}},
		{"percent-encoding", cloudevent.Event{ID: "a b", Source: "/s", SpecVersion: "1.0", Type: `"q"`,
			Subject: "100% é€😀+~!", Extensions: map[string]string{"tab": "a\tb\x7f", "empty": ""}}, http.Header{
			"Ce-Id": {"a%20b"}, "Ce-Source": {"/s"}, "Ce-Specversion": {"1.0"}, "Ce-Type": {"%22q%22"},
			"Ce-Subject": {"100%25%20%C3%A9%E2%82%AC%F0%9F%98%80+~!"}, "Ce-Tab": {"a%09b%7F"}, "Ce-Empty": {""},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{"Ce-Stale": {"x"}, "ce-lower": {"x"}, "Content-Type": {"text/stale"}, "Authorization": {"kept"}}
			body := tc.e.ToHTTP(h)
			tc.want.Set("Authorization", "kept")
			if diff := cmp.Diff(tc.want, h); diff != "" {
				t.Fatalf("header (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.e.Data, body); diff != "" {
				t.Fatalf("body (-want +got):\n%s", diff)
			}
		})
	}
}

// randomEvent is a valid event of random attributes: unicode, spaces,
// quotes, percent signs and plus signs in every string that may hold them.
func randomEvent(r *rand.Rand) cloudevent.Event {
	pieces := []string{"a", "Z", "0", " ", "%", "%20", "\"", "+", "é", "€", "😀", "日本", "~", "'", "\\", "=", "ß", "\u00a0", "\u2028"}
	str := func(min int) string {
		var b strings.Builder
		for range min + r.IntN(8) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		return b.String()
	}
	uri := func() string {
		segs := []string{"a", "b-c", "%20", "x.y", "~u", "1"}
		s := "/" + segs[r.IntN(len(segs))]
		for range r.IntN(3) {
			s += "/" + segs[r.IntN(len(segs))]
		}
		return s
	}
	e := cloudevent.Event{ID: str(1), Source: uri(), SpecVersion: "1.0", Type: str(1)}
	if r.IntN(2) == 0 {
		e.Subject = str(1)
	}
	if r.IntN(2) == 0 {
		e.DataSchema = "https://example.com" + uri()
	}
	if r.IntN(2) == 0 {
		e.Time = time.Unix(r.Int64N(1<<36), r.Int64N(1e9)).UTC()
	}
	for range r.IntN(4) {
		if e.Extensions == nil {
			e.Extensions = map[string]string{}
		}
		e.Extensions[fmt.Sprintf("ext%d", r.IntN(100))] = str(0)
	}
	switch r.IntN(4) {
	case 0:
		e.DataContentType, e.Data = "application/json", []byte(`{"k": "`+str(0)+`"}`)
	case 1:
		e.DataContentType, e.Data = "text/plain; charset=utf-8", []byte(str(1))
	case 2:
		e.Data = make([]byte, 1+r.IntN(16))
		for i := range e.Data {
			e.Data[i] = byte(r.IntN(256))
		}
		if r.IntN(2) == 0 {
			e.DataContentType = "application/octet-stream"
		}
	}
	return e
}

// TestRoundTrip: an event survives ToHTTP and FromHTTP (binary mode), and
// StructuredJSON and FromHTTP (structured mode), unchanged.
func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		e := randomEvent(r)
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			if err := e.Validate(); err != nil {
				t.Fatalf("random event %+v is not valid: %v", e, err)
			}
			h := http.Header{}
			body := e.ToHTTP(h)
			got, err := cloudevent.FromHTTP(h, body)
			if err != nil {
				t.Fatalf("binary: FromHTTP(%v): %v", h, err)
			}
			if diff := cmp.Diff(e, got); diff != "" {
				t.Fatalf("binary (-sent +read):\n%s", diff)
			}
			b, err := e.StructuredJSON()
			if err != nil {
				t.Fatal(err)
			}
			got, err = cloudevent.FromHTTP(http.Header{"Content-Type": {cloudevent.MediaType}}, b)
			if err != nil {
				t.Fatalf("structured: FromHTTP(%s): %v", b, err)
			}
			if diff := cmp.Diff(e, got); diff != "" {
				t.Fatalf("structured %s (-sent +read):\n%s", b, diff)
			}
		})
	}
}

// TestDeliveryOverHTTP delivers an event to a server through net/http and
// reads it there.
func TestDeliveryOverHTTP(t *testing.T) {
	e := valid()
	e.Subject = "ä b\"%\u2028"
	got := make(chan cloudevent.Event, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
		}
		if s := r.Header.Get("Ce-Subject"); s != "%C3%A4%20b%22%25%E2%80%A8" {
			t.Errorf("got ce-subject %q on the wire", s)
		}
		ev, err := cloudevent.FromHTTP(r.Header, body)
		if err != nil {
			t.Error(err)
		}
		got <- ev
	}))
	defer srv.Close()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	body := e.ToHTTP(req.Header)
	req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if diff := cmp.Diff(e, <-got); diff != "" {
		t.Fatalf("(-sent +read):\n%s", diff)
	}
}
