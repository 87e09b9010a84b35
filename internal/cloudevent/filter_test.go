package cloudevent_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wisp-run/wisp/internal/cloudevent"
)

func TestParseFilter(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want cloudevent.Filter
		msg  string
	}{
		{"exact type", "type=com.example.order.created", cloudevent.Filter{Attribute: "type", Exact: "com.example.order.created"}, ""},
		{"prefix of type", "type^=com.example.", cloudevent.Filter{Attribute: "type", Prefix: "com.example."}, ""},
		{"exact source", "source=/orders", cloudevent.Filter{Attribute: "source", Exact: "/orders"}, ""},
		{"prefix of subject", "subject^=order/", cloudevent.Filter{Attribute: "subject", Prefix: "order/"}, ""},
		{"a value with = in it", "subject=a=b", cloudevent.Filter{Attribute: "subject", Exact: "a=b"}, ""},
		{"a value with ^= in it", "subject=^=x", cloudevent.Filter{Attribute: "subject", Exact: "^=x"}, ""},
		{"a value with spaces", "subject=a b", cloudevent.Filter{Attribute: "subject", Exact: "a b"}, ""},

		{"no =", "type", cloudevent.Filter{}, `filter "type" has no "="; write ATTRIBUTE=VALUE for an exact match or ATTRIBUTE^=PREFIX for a prefix, ATTRIBUTE one of type, source, subject`},
		{"empty", "", cloudevent.Filter{}, `filter "" has no "="`},
		{"no attribute", "=x", cloudevent.Filter{}, "filter names no attribute; filter on one of type, source, subject"},
		{"no attribute before ^=", "^=x", cloudevent.Filter{}, "filter names no attribute"},
		{"unknown attribute", "id=1", cloudevent.Filter{}, `filter on attribute "id"; Wisp filters on type, source, subject`},
		{"an extension", "traceparent=1", cloudevent.Filter{}, `filter on attribute "traceparent"`},
		{"attribute in upper case", "Type=x", cloudevent.Filter{}, `filter on attribute "Type"`},
		{"space around the attribute", "type =x", cloudevent.Filter{}, `filter on attribute "type "`},
		{"empty exact value", "type=", cloudevent.Filter{}, "filter on type has an empty value; an empty attribute is an absent one and never matches"},
		{"empty prefix", "type^=", cloudevent.Filter{}, "filter on type has an empty value"},
		{"another operator", "type~=x", cloudevent.Filter{}, `filter on attribute "type~"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cloudevent.ParseFilter(tc.in)
			wantErr(t, err, "filter", tc.msg)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("filter (-want +got):\n%s", diff)
			}
			if err == nil && got.String() != tc.in {
				t.Fatalf("got String() %q, want %q", got.String(), tc.in)
			}
		})
	}
}

func TestFilterValidate(t *testing.T) {
	cases := []struct {
		name string
		f    cloudevent.Filter
		msg  string
	}{
		{"exact", cloudevent.Filter{Attribute: "type", Exact: "x"}, ""},
		{"prefix", cloudevent.Filter{Attribute: "source", Prefix: "/x"}, ""},
		{"both", cloudevent.Filter{Attribute: "type", Exact: "x", Prefix: "y"}, `filter on type has both an exact value "x" and a prefix "y"; give one`},
		{"neither", cloudevent.Filter{Attribute: "subject"}, "filter on subject has an empty value"},
		{"no attribute", cloudevent.Filter{Exact: "x"}, "filter names no attribute"},
		{"bad attribute", cloudevent.Filter{Attribute: "data", Exact: "x"}, `filter on attribute "data"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, tc.f.Validate(), "filter", tc.msg)
		})
	}
}

func TestMatches(t *testing.T) {
	e := cloudevent.Event{ID: "1", Source: "/orders/eu", SpecVersion: "1.0", Type: "com.example.order.created", Subject: "order/123"}
	noSubject := e
	noSubject.Subject = ""
	exact := func(a, v string) cloudevent.Filter { return cloudevent.Filter{Attribute: a, Exact: v} }
	prefix := func(a, v string) cloudevent.Filter { return cloudevent.Filter{Attribute: a, Prefix: v} }
	cases := []struct {
		name    string
		e       cloudevent.Event
		filters []cloudevent.Filter
		want    bool
	}{
		{"no filters match all", e, nil, true},
		{"exact type", e, []cloudevent.Filter{exact("type", "com.example.order.created")}, true},
		{"exact type is not a prefix", e, []cloudevent.Filter{exact("type", "com.example.")}, false},
		{"exact is case-sensitive", e, []cloudevent.Filter{exact("type", "com.example.Order.created")}, false},
		{"prefix of type", e, []cloudevent.Filter{prefix("type", "com.example.")}, true},
		{"prefix that is the whole value", e, []cloudevent.Filter{prefix("type", "com.example.order.created")}, true},
		{"prefix longer than the value", e, []cloudevent.Filter{prefix("type", "com.example.order.created.v2")}, false},
		{"other prefix", e, []cloudevent.Filter{prefix("type", "org.")}, false},
		{"exact source", e, []cloudevent.Filter{exact("source", "/orders/eu")}, true},
		{"prefix of subject", e, []cloudevent.Filter{prefix("subject", "order/")}, true},
		{"all match", e, []cloudevent.Filter{prefix("type", "com.example."), exact("source", "/orders/eu"), exact("subject", "order/123")}, true},
		{"one does not", e, []cloudevent.Filter{prefix("type", "com.example."), exact("source", "/orders/us")}, false},
		{"absent subject never matches", noSubject, []cloudevent.Filter{prefix("subject", "order/")}, false},
		{"absent subject never matches an empty prefix", noSubject, []cloudevent.Filter{prefix("subject", "")}, false},
		{"absent subject never matches an empty exact value", noSubject, []cloudevent.Filter{exact("subject", "")}, false},
		{"an invalid filter never matches", e, []cloudevent.Filter{exact("id", "1")}, false},
		{"a filter with both values never matches", e, []cloudevent.Filter{{Attribute: "type", Exact: e.Type, Prefix: "com."}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := cloudevent.Matches(tc.e, tc.filters); got != tc.want {
				t.Fatalf("Matches(%v) = %v, want %v", tc.filters, got, tc.want)
			}
		})
	}
}
