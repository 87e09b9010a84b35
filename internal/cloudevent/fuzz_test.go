package cloudevent_test

import (
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wisp-run/wisp/internal/cloudevent"
	"github.com/wisp-run/wisp/internal/core"
)

// FuzzFromHTTP: FromHTTP never panics, and an event it reads survives the
// way back out and in again, in binary mode and as StructuredJSON.
func FuzzFromHTTP(f *testing.F) {
	f.Add("application/cloudevents+json", "", "", `{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"a":1},"x":5}`)
	f.Add("application/cloudevents+json", "", "", `{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"text/plain","data":"hi"}`)
	f.Add("application/cloudevents+json", "", "", `{"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":"AP8="}`)
	f.Add("application/cloudevents-batch+json", "", "", `[]`)
	f.Add("application/json", "Ce-Subject", "a%20b%C3%A9", `{"a": 1}`)
	f.Add("", "Ce-Time", "2026-01-01T00:00:00.5+01:00", "")
	f.Add("text/plain", "Ce-Ext", "%zz", "x")
	f.Add("", "Ce-Type", "%C3", "")
	f.Fuzz(func(t *testing.T, contentType, name, value, body string) {
		h := http.Header{}
		if contentType != "" {
			h.Set("Content-Type", contentType)
		}
		if contentType != cloudevent.MediaType {
			h.Set("Ce-Specversion", "1.0")
			h.Set("Ce-Id", "1")
			h.Set("Ce-Source", "/s")
			h.Set("Ce-Type", "t")
		}
		if name != "" {
			h[name] = []string{value}
		}
		events, berr := cloudevent.BatchFromHTTP(h, []byte(body))
		if berr != nil {
			wantErr(t, berr, core.ErrorField(berr), "cloudevent: ")
		}
		e, err := cloudevent.FromHTTP(h, []byte(body))
		if err != nil {
			wantErr(t, err, core.ErrorField(err), "cloudevent: ")
			return
		}
		if diff := cmp.Diff([]cloudevent.Event{e}, events); diff != "" || berr != nil {
			t.Fatalf("BatchFromHTTP error %v, events (-FromHTTP +BatchFromHTTP):\n%s", berr, diff)
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("FromHTTP returned an invalid event: %v", err)
		}
		out := http.Header{}
		got, err := cloudevent.FromHTTP(out, e.ToHTTP(out))
		if err != nil {
			t.Fatalf("binary: read back %v: %v", out, err)
		}
		if diff := cmp.Diff(e, got); diff != "" {
			t.Fatalf("binary (-first +second):\n%s", diff)
		}
		b, err := e.StructuredJSON()
		if err != nil {
			t.Fatal(err)
		}
		got, err = cloudevent.FromHTTP(http.Header{"Content-Type": {cloudevent.MediaType}}, b)
		if err != nil {
			t.Fatalf("structured: read back %s: %v", b, err)
		}
		if diff := cmp.Diff(e, got); diff != "" {
			t.Fatalf("structured %s (-first +second):\n%s", b, diff)
		}
	})
}
