package cloudevent_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wisp-run/wisp/internal/cloudevent"
)

// TestStructuredData: how the data member becomes Data, for each kind of
// datacontenttype.
func TestStructuredData(t *testing.T) {
	const req = `"specversion":"1.0","id":"1","source":"/s","type":"t"`
	cases := []struct {
		name     string
		members  string
		wantType string
		wantData string
	}{
		{"JSON data without a type is JSON", `"data": [1, 2]`, "application/json", `[1, 2]`},
		{"JSON data keeps its bytes", `"datacontenttype":"application/json","data":{"a" : "\u00e9<"}`, "application/json", `{"a" : "\u00e9<"}`},
		{"a JSON string under a JSON type stays JSON", `"datacontenttype":"application/json","data":"x"`, "application/json", `"x"`},
		{"a +json type is JSON", `"datacontenttype":"application/vnd.order+json","data":"x"`, "application/vnd.order+json", `"x"`},
		{"a string under a text type is its text", `"datacontenttype":"text/xml","data":"<much wow=\"xml\"/>"`, "text/xml", `<much wow="xml"/>`},
		{"a number under a text type stays as sent", `"datacontenttype":"text/plain","data":5`, "text/plain", `5`},
		{"data_base64", `"datacontenttype":"application/octet-stream","data_base64":"AP8="`, "application/octet-stream", "\x00\xff"},
		{"data_base64 without a type", `"data_base64":"aGk="`, "", "hi"},
		{"null data is none", `"data":null`, "", ""},
		{"null data_base64 is none beside data", `"data_base64":null,"data":1`, "application/json", "1"},
		{"empty data_base64 is none", `"data_base64":""`, "", ""},
		{"no data", ``, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := `{` + req
			if tc.members != "" {
				body += "," + tc.members
			}
			body += "}"
			e, err := cloudevent.FromHTTP(http.Header{"Content-Type": {cloudevent.MediaType}}, []byte(body))
			if err != nil {
				t.Fatal(err)
			}
			var want []byte
			if tc.wantData != "" {
				want = []byte(tc.wantData)
			}
			if e.DataContentType != tc.wantType {
				t.Errorf("got datacontenttype %q, want %q", e.DataContentType, tc.wantType)
			}
			if diff := cmp.Diff(want, e.Data); diff != "" {
				t.Errorf("data (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStructuredJSON(t *testing.T) {
	base := cloudevent.Event{ID: "1", Source: "/s", SpecVersion: "1.0", Type: "t"}
	with := func(change func(e *cloudevent.Event)) cloudevent.Event {
		e := base
		change(&e)
		return e
	}
	const head = `{"specversion":"1.0","id":"1","source":"/s","type":"t"`
	cases := []struct {
		name string
		e    cloudevent.Event
		want string
	}{
		{"required only", base, head + `}`},
		{"every attribute, in a fixed order", valid(),
			`{"specversion":"1.0","id":"A234-1234-1234","source":"https://github.com/cloudevents/spec/pull","type":"com.example.order.created",` +
				`"datacontenttype":"application/json","dataschema":"https://example.com/schemas/order.json","subject":"order/123",` +
				`"time":"2026-12-02T16:20:00.123456789Z","comexampleothervalue":"5",` +
				`"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","data":{"order":123}}`},
		{"JSON data byte for byte", with(func(e *cloudevent.Event) { e.DataContentType, e.Data = "application/json", []byte(`{"a" :  "<&>"}`) }),
			head + `,"datacontenttype":"application/json","data":{"a" :  "<&>"}}`},
		{"JSON data with white space around it in base64", with(func(e *cloudevent.Event) { e.DataContentType, e.Data = "application/json", []byte(" 1\n") }),
			head + `,"datacontenttype":"application/json","data_base64":"IDEK"}`},
		{"JSON null in base64", with(func(e *cloudevent.Event) { e.DataContentType, e.Data = "application/json", []byte("null") }),
			head + `,"datacontenttype":"application/json","data_base64":"bnVsbA=="}`},
		{"bad JSON in base64", with(func(e *cloudevent.Event) { e.DataContentType, e.Data = "application/json", []byte("{") }),
			head + `,"datacontenttype":"application/json","data_base64":"ew=="}`},
		{"text as a string", with(func(e *cloudevent.Event) { e.DataContentType, e.Data = "text/plain", []byte("a \"<b>\"\n") }),
			head + `,"datacontenttype":"text/plain","data":"a \"<b>\"\n"}`},
		{"bytes that are not UTF-8 in base64", with(func(e *cloudevent.Event) { e.DataContentType, e.Data = "text/plain", []byte{0xff} }),
			head + `,"datacontenttype":"text/plain","data_base64":"/w=="}`},
		{"data without a type in base64", with(func(e *cloudevent.Event) { e.Data = []byte("{}") }),
			head + `,"data_base64":"e30="}`},
		{"unicode attributes unescaped", with(func(e *cloudevent.Event) { e.Subject = "é <&> \u2028" }),
			head + `,"subject":"é <&> \u2028"}`},
		{"time in UTC", with(func(e *cloudevent.Event) { e.Time = time.Date(2026, 1, 1, 1, 0, 0, 0, time.FixedZone("x", 3600)) }),
			head + `,"time":"2026-01-01T00:00:00Z"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.e.StructuredJSON()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, string(got)); diff != "" {
				t.Fatalf("JSON (-want +got):\n%s", diff)
			}
			back, err := cloudevent.FromHTTP(http.Header{"Content-Type": {cloudevent.MediaType}}, got)
			if err != nil {
				t.Fatalf("FromHTTP(%s): %v", got, err)
			}
			if diff := cmp.Diff(tc.e, back); diff != "" {
				t.Fatalf("read back (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("invalid event", func(t *testing.T) {
		_, err := cloudevent.Event{ID: "1", SpecVersion: "1.0", Type: "t"}.StructuredJSON()
		wantErr(t, err, "source", `required attribute "source" is missing`)
	})
}

// TestJSONInsideARecord: an Event field of a stored record goes through
// encoding/json.
func TestJSONInsideARecord(t *testing.T) {
	type record struct {
		Event    cloudevent.Event `json:"event"`
		Attempts int              `json:"attempts"`
	}
	in := record{Event: valid(), Attempts: 2}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out record
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out); diff != "" {
		t.Fatalf("(-in +out):\n%s", diff)
	}
	if _, err := json.Marshal(record{Event: cloudevent.Event{ID: "1"}}); err == nil {
		t.Fatal("marshalled an invalid event")
	}
	err = json.Unmarshal([]byte(`{"event":{"specversion":"0.3"}}`), &out)
	wantErr(t, err, "specversion", `"0.3"; Wisp accepts "1.0"`)
}

func TestBatchFromHTTP(t *testing.T) {
	batch := http.Header{"Content-Type": {cloudevent.BatchMediaType}}
	one := cloudevent.Event{ID: "1", Source: "/s", SpecVersion: "1.0", Type: "t"}
	two := cloudevent.Event{ID: "2", Source: "/s", SpecVersion: "1.0", Type: "t", DataContentType: "application/json", Data: []byte(`{}`)}
	const e1, e2 = `{"specversion":"1.0","id":"1","source":"/s","type":"t"}`, `{"specversion":"1.0","id":"2","source":"/s","type":"t","data":{}}`
	cases := []struct {
		name   string
		header http.Header
		body   string
		want   []cloudevent.Event
		field  string
		msg    string
	}{
		{"two events", batch, "[" + e1 + ",\n" + e2 + "]", []cloudevent.Event{one, two}, "", ""},
		{"empty batch", batch, `[ ]`, []cloudevent.Event{}, "", ""},
		{"a structured event is a batch of one", http.Header{"Content-Type": {cloudevent.MediaType}}, e1, []cloudevent.Event{one}, "", ""},
		{"a binary event is a batch of one", binaryHeader(), "", []cloudevent.Event{one}, "", ""},
		{"an error names the event", batch, "[" + e1 + `,{"specversion":"1.0","id":"2","source":"/s"}]`, nil, "type", `batch event 1: required attribute "type" is missing`},
		{"not an array", batch, e1, nil, "", "a batch must be a JSON array of events, got an object"},
		{"an element not an object", batch, `[1]`, nil, "", "batch event 0: a structured event must be a JSON object, got a number"},
		{"cut short", batch, "[" + e1, nil, "", "malformed JSON"},
		{"empty body", batch, ``, nil, "", "malformed JSON: the batch ends early"},
		{"trailing data", batch, `[] []`, nil, "", "unexpected data after the JSON array"},
		{"invalid UTF-8", batch, "[\"\xff\"]", nil, "", "the batch is not valid UTF-8"},
		{"a binary error", binaryHeader("Ce-Type", "%"), "", nil, "type", "bad percent-encoding"},
		{"another format", http.Header{"Content-Type": {"application/cloudevents-batch+xml"}}, ``, nil, "datacontenttype", "event format Wisp does not read"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cloudevent.BatchFromHTTP(tc.header, []byte(tc.body))
			wantErr(t, err, tc.field, tc.msg)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("events (-want +got):\n%s", diff)
			}
		})
	}
}
