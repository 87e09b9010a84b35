package cloudevent

import (
	"strings"

	"github.com/wisp-run/wisp/internal/core"
)

// filterField is the field of a trigger that its filters are errors of.
const filterField = "filter"

// filterable are the attributes a Filter may test.
var filterable = []string{AttrType, AttrSource, AttrSubject}

// Filter picks the events of a trigger by one attribute: equal to Exact,
// or starting with Prefix. Exactly one of them is set.
type Filter struct {
	Attribute string // type, source or subject
	Exact     string
	Prefix    string
}

// ParseFilter reads a filter in the syntax of the CLI: type=VALUE for an
// exact match, type^=PREFIX for a prefix. The value is everything after
// the first "=" and may contain "=" itself.
func ParseFilter(s string) (Filter, error) {
	attr, value, ok := strings.Cut(s, "=")
	if !ok {
		return Filter{}, core.Invalidf(filterField, "cloudevent: filter %q has no \"=\"; write ATTRIBUTE=VALUE for an exact match or ATTRIBUTE^=PREFIX for a prefix, ATTRIBUTE one of %s", s, strings.Join(filterable, ", "))
	}
	var f Filter
	if a, isPrefix := strings.CutSuffix(attr, "^"); isPrefix {
		f = Filter{Attribute: a, Prefix: value}
	} else {
		f = Filter{Attribute: attr, Exact: value}
	}
	if err := f.Validate(); err != nil {
		return Filter{}, err
	}
	return f, nil
}

// Validate checks that the filter tests an attribute it may test and has
// exactly one non-empty value.
func (f Filter) Validate() error {
	ok := false
	for _, a := range filterable {
		ok = ok || f.Attribute == a
	}
	switch {
	case f.Attribute == "":
		return core.Invalidf(filterField, "cloudevent: filter names no attribute; filter on one of %s", strings.Join(filterable, ", "))
	case !ok:
		return core.Invalidf(filterField, "cloudevent: filter on attribute %q; Wisp filters on %s", f.Attribute, strings.Join(filterable, ", "))
	case f.Exact != "" && f.Prefix != "":
		return core.Invalidf(filterField, "cloudevent: filter on %s has both an exact value %q and a prefix %q; give one", f.Attribute, f.Exact, f.Prefix)
	case f.Exact == "" && f.Prefix == "":
		return core.Invalidf(filterField, "cloudevent: filter on %s has an empty value; an empty attribute is an absent one and never matches", f.Attribute)
	}
	return nil
}

// String is the filter in the syntax of ParseFilter.
func (f Filter) String() string {
	if f.Prefix != "" {
		return f.Attribute + "^=" + f.Prefix
	}
	return f.Attribute + "=" + f.Exact
}

// Matches reports whether e passes every filter (no filters pass every
// event). An attribute the event lacks never matches, and neither does a
// filter that is not valid.
func Matches(e Event, filters []Filter) bool {
	for _, f := range filters {
		if !f.match(e) {
			return false
		}
	}
	return true
}

func (f Filter) match(e Event) bool {
	var v string
	switch f.Attribute {
	case AttrType:
		v = e.Type
	case AttrSource:
		v = e.Source
	case AttrSubject:
		v = e.Subject
	default:
		return false
	}
	switch {
	case v == "":
		return false
	case f.Exact != "" && f.Prefix == "":
		return v == f.Exact
	case f.Prefix != "" && f.Exact == "":
		return strings.HasPrefix(v, f.Prefix)
	}
	return false
}
