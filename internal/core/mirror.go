package core

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Mirror copies a share of a service's requests to another version and
// compares the answers (issue 15, part 3). The copies' answers are never
// returned to clients. It is part of a traffic entry, so the history and a
// rollback include it.
type Mirror struct {
	// Version receives the copies. Requests it serves itself are not
	// mirrored.
	Version int `json:"version"`
	// Percent of the other versions' requests are copied, 1 to 100.
	Percent int `json:"percent"`
	// AllMethods mirrors every method; otherwise only GET, HEAD and
	// OPTIONS, which a copy cannot turn into a second side effect.
	AllMethods bool `json:"all_methods,omitempty"`
	// IgnoreHeaders are response headers left out of the comparison
	// (case-insensitive). Date, Content-Length and Wisp-* are always left
	// out.
	IgnoreHeaders []string `json:"ignore_headers,omitempty"`
	// IgnoreFields are fields of JSON response bodies left out of the body
	// hash, as dot-separated paths ("timestamp", "data.id"); a path
	// through an array applies to each of its elements.
	IgnoreFields []string `json:"ignore_fields,omitempty"`
}

// The bounds of a mirror setting.
const (
	MaxMirrorIgnores  = 32
	maxMirrorIgnoreLn = 256
)

// String is the setting in the CLI's words.
func (m Mirror) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d%% of requests to v%d", m.Percent, m.Version)
	if m.AllMethods {
		b.WriteString(", all methods")
	} else {
		b.WriteString(", GET, HEAD and OPTIONS only")
	}
	if len(m.IgnoreHeaders) > 0 {
		b.WriteString("; ignoring headers " + strings.Join(m.IgnoreHeaders, ", "))
	}
	if len(m.IgnoreFields) > 0 {
		b.WriteString("; ignoring JSON fields " + strings.Join(m.IgnoreFields, ", "))
	}
	return b.String()
}

// Equal reports whether m and o are the same setting (nil is off).
func (m *Mirror) Equal(o *Mirror) bool {
	if m == nil || o == nil {
		return m == o
	}
	return m.Version == o.Version && m.Percent == o.Percent && m.AllMethods == o.AllMethods &&
		slices.Equal(m.IgnoreHeaders, o.IgnoreHeaders) && slices.Equal(m.IgnoreFields, o.IgnoreFields)
}

// validateMirror checks t's mirror, if any, for service.
func (t Traffic) validateMirror(service string, exists func(int) bool) error {
	m := t.Mirror
	if m == nil {
		return nil
	}
	switch {
	case m.Version < 1:
		return Invalidf("mirror.version", "mirror.version must be a version number of %s (1 or more), got %d", service, m.Version)
	case !exists(m.Version):
		return Invalidf("mirror.version", "mirror: service %s has no version %d", service, m.Version)
	case m.Percent < 1 || m.Percent > 100:
		return Invalidf("mirror.percent", "mirror.percent must be between 1 and 100, got %d", m.Percent)
	case t.PercentOf(m.Version) == 100:
		return Invalidf("mirror.version", "mirror: version %d already gets 100%% of the traffic of %s, so no request is left to copy to it; mirror to another version, or turn the mirror off", m.Version, service)
	case len(m.IgnoreHeaders) > MaxMirrorIgnores:
		return Invalidf("mirror.ignore_headers", "%d ignored headers; the limit is %d", len(m.IgnoreHeaders), MaxMirrorIgnores)
	case len(m.IgnoreFields) > MaxMirrorIgnores:
		return Invalidf("mirror.ignore_fields", "%d ignored fields; the limit is %d", len(m.IgnoreFields), MaxMirrorIgnores)
	}
	for i, h := range m.IgnoreHeaders {
		if !validHeaderName(h) {
			return Invalidf("mirror.ignore_headers["+strconv.Itoa(i)+"]", "mirror.ignore_headers[%d]: %q is not a header name (letters, digits and !#$%%&'*+-.^_`|~, at most %d bytes)", i, h, maxMirrorIgnoreLn)
		}
	}
	for i, f := range m.IgnoreFields {
		if err := validFieldPath(f); err != "" {
			return Invalidf("mirror.ignore_fields["+strconv.Itoa(i)+"]", "mirror.ignore_fields[%d]: %q %s", i, f, err)
		}
	}
	return nil
}

// validHeaderName: an RFC 9110 token.
func validHeaderName(h string) bool {
	if h == "" || len(h) > maxMirrorIgnoreLn {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validFieldPath returns why path is not a field path, or "".
func validFieldPath(path string) string {
	switch {
	case path == "":
		return "is empty; give a field name such as timestamp or data.id"
	case len(path) > maxMirrorIgnoreLn:
		return fmt.Sprintf("is longer than %d bytes", maxMirrorIgnoreLn)
	case strings.ContainsAny(path, " \t\r\n[]*"):
		return "is not a field path: names separated by dots, such as data.id (no spaces, brackets or wildcards)"
	}
	for _, seg := range strings.Split(path, ".") {
		if seg == "" {
			return "has an empty name between dots; write names separated by single dots, such as data.id"
		}
	}
	return ""
}

// MirrorReport is what the routers saw of a service's mirror since the
// setting last changed (or the replica started): the leader's, combined
// with the latest state every other replica sent it with its load report.
type MirrorReport struct {
	Service string `json:"service"`
	// Mirror is the current setting; nil when mirroring is off.
	Mirror *Mirror `json:"mirror"`
	// Since is when the leader's router (on a single Wisp: this one)
	// began this report.
	Since time.Time    `json:"since"`
	Pairs []MirrorPair `json:"pairs"`
	// Replica is the replica that answered.
	Replica string `json:"replica,omitempty"`
	// Replicas counts the replicas whose numbers the report covers (0
	// without a mirror).
	Replicas int `json:"replicas"`
	// Partial: a replica that does not lead could not reach the leader,
	// so the report covers its own numbers only.
	Partial bool `json:"partial,omitempty"`
}

// MirrorPair is the comparison of one primary version with the mirror.
type MirrorPair struct {
	Primary int `json:"primary"`
	Mirror  int `json:"mirror"`
	// Compared counts the pairs of answers compared; Matched those that
	// agreed in status, headers and body hash.
	Compared  int64   `json:"compared"`
	Matched   int64   `json:"matched"`
	MatchRate float64 `json:"match_rate"`
	// Mismatches counts the differing pairs by kind (status, header,
	// body); a pair can differ in several.
	Mismatches map[string]int64 `json:"mismatches"`
	// Dropped counts copies not made because as many were in flight as
	// allowed; TooLarge those whose request body was over the bound;
	// Errors those whose mirror failed (no instance, timeout, broken
	// answer) and were not compared.
	Dropped  int64 `json:"dropped"`
	TooLarge int64 `json:"too_large"`
	Errors   int64 `json:"errors"`
	// Examples are the first differing pairs (at most MaxMirrorExamples).
	Examples       []MirrorExample `json:"examples"`
	PrimaryLatency LatencySummary  `json:"primary_latency"`
	MirrorLatency  LatencySummary  `json:"mirror_latency"`
}

// MaxMirrorExamples bounds the examples a pair keeps, MaxMirrorExcerpt
// each body excerpt and MaxMirrorPath each path, in bytes, and
// MaxMirrorHeaders the differing headers an example names.
const (
	MaxMirrorExamples = 10
	MaxMirrorExcerpt  = 256
	MaxMirrorPath     = 1024
	MaxMirrorHeaders  = 32
)

// MirrorExample is one differing pair of answers.
type MirrorExample struct {
	At            time.Time `json:"at"`
	Method        string    `json:"method"`
	Path          string    `json:"path"`
	Kinds         []string  `json:"kinds"`
	PrimaryStatus int       `json:"primary_status"`
	MirrorStatus  int       `json:"mirror_status"`
	// Headers names the headers that differ, when they do.
	Headers     []string `json:"headers,omitempty"`
	PrimaryBody string   `json:"primary_body"`
	MirrorBody  string   `json:"mirror_body"`
}

// LatencySummary gives percentiles of latencies, in milliseconds, over
// Count samples; each is the bound of a log-linear histogram's bucket, at
// most 12.5% above the true value (package latency).
type LatencySummary struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
}

// MirrorState is one replica's cumulative numbers of a service's mirror
// since the setting began there, as it sends them to the leader. The
// setting and the mirror version's ID are its identity: the leader adds a
// state only to a report of the same setting, so numbers of an older one
// are never mixed in.
type MirrorState struct {
	Service string `json:"service"`
	Mirror  Mirror `json:"mirror"`
	// VersionID is the store's ID of the mirror version (a version
	// deleted and made again has another).
	VersionID int64             `json:"version_id"`
	Pairs     []MirrorPairState `json:"pairs"`
}

// MirrorPairState is one pair's cumulative numbers on one replica; the
// latencies are counts per bucket of package latency's histogram (by
// bucket index; empty buckets left out).
type MirrorPairState struct {
	Primary        int              `json:"primary"`
	Compared       int64            `json:"compared"`
	Matched        int64            `json:"matched"`
	Mismatches     map[string]int64 `json:"mismatches,omitempty"`
	Dropped        int64            `json:"dropped"`
	TooLarge       int64            `json:"too_large"`
	Errors         int64            `json:"errors"`
	Examples       []MirrorExample  `json:"examples,omitempty"`
	PrimaryLatency map[int]int64    `json:"primary_latency_buckets,omitempty"`
	MirrorLatency  map[int]int64    `json:"mirror_latency_buckets,omitempty"`
}

// The kinds of a mismatch.
const (
	MismatchStatus = "status"
	MismatchHeader = "header"
	MismatchBody   = "body"
)

// MirrorFor returns m as t may keep it: nil when t gives m's version 100%
// of the traffic, so a change of weights that sends everything to the
// mirror's version turns the mirror off rather than failing.
func (t Traffic) MirrorFor(m *Mirror) *Mirror {
	if m == nil || t.PercentOf(m.Version) == 100 {
		return nil
	}
	return m
}
