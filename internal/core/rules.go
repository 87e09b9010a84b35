package core

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// The functions in this file are the rules of every write to a service's
// stored state. A store adapter reads the rows a write depends on inside the
// write's transaction, calls one of these, and writes what it returns. The
// adapter holds no rule of its own, so every store (SQLite and Postgres)
// decides the same way, and the rules are tested once, here.

// The errors every store reports the same way, so that a user reads the same
// message whichever store runs.

// ServiceNotFound reports a missing service.
func ServiceNotFound(name string) error { return NotFoundf("service %q not found", name) }

// ServiceExists reports a service name that is taken.
func ServiceExists(name string) error { return AlreadyExistsf("service %q already exists", name) }

// VersionNotFound reports a missing version of an existing service.
func VersionNotFound(service string, number int) error {
	return NotFoundf("service %q has no version %d", service, number)
}

// NoTraffic reports a service that has no traffic entry yet.
func NoTraffic(service string) error {
	return NotFoundf("service %q has no traffic yet; create a version and it gets 100%%", service)
}

// AnyEntry is the ifEntry of a conditional traffic write that only requires
// that the service has a current traffic entry (If-Match: *).
const AnyEntry int64 = -1

// CheckNewService checks a service about to be created: its name and its
// scaling policy.
func CheckNewService(sv Service) error {
	if err := ValidateServiceName(sv.Name); err != nil {
		return err
	}
	return sv.Policy.Validate()
}

// PatchPolicy returns cur with patch applied, or ErrInvalid (and cur) when
// the result breaks a bound. It never touches versions.
func PatchPolicy(cur ScalingPolicy, patch PolicyPatch) (ScalingPolicy, error) {
	p := patch.Apply(cur)
	if err := p.Validate(); err != nil {
		return cur, err
	}
	return p, nil
}

// CheckDeploy returns spec with its defaults filled in, after checking it,
// and checks the percent of traffic a deploy gives the new version.
func CheckDeploy(spec VersionSpec, percent int) (VersionSpec, error) {
	spec = spec.WithDefaults()
	if err := spec.Validate(); err != nil {
		return VersionSpec{}, err
	}
	if percent < 0 || percent > 100 {
		return VersionSpec{}, Invalidf("promote", "percent must be between 0 and 100, got %d", percent)
	}
	return spec, nil
}

// DeployTraffic decides the traffic entry that creating version number of
// service appends; ok is false when traffic stays as it is. cur is the
// current entry, nil when the service has none; exists reports the
// service's versions, the new one included.
//
// A service without traffic gives its new version 100%, with message or
// "first version vN gets all traffic": there is nothing else to serve.
// Otherwise percent 0 leaves traffic alone, and 1–100 gives the new version
// percent with Traffic.Shift (the others keep their proportions, tags and
// stickiness stay), with message.
func DeployTraffic(service string, cur *TrafficEntry, number, percent int, message string, exists func(int) bool) (next Traffic, ok bool, err error) {
	switch {
	case cur == nil:
		if message == "" {
			message = fmt.Sprintf("first version v%d gets all traffic", number)
		}
		next = Traffic{Weights: []Weight{{Version: number, Percent: 100}}, Message: message}
	case percent == 0:
		return Traffic{}, false, nil
	default:
		next = cur.Shift(number, percent, message)
	}
	if next, err = CheckTraffic(service, next, exists); err != nil {
		return Traffic{}, false, err
	}
	return next, true, nil
}

// CheckDeleteVersion says whether version number of service may be deleted
// given the current traffic entry (nil when there is none): not while the
// split gives it more than 0%, a tag names it or a request rule sends
// requests to it (ErrConflict). Refusing rather than dropping the rule: a
// rule that silently disappeared would send its requests to the weighted
// pick, which is the change a person must decide.
func CheckDeleteVersion(service string, number int, cur *TrafficEntry) error {
	if cur == nil {
		return nil
	}
	if p := cur.PercentOf(number); p > 0 {
		return Conflictf("version %d of service %q carries %d%% of traffic; move its traffic to another version first", number, service, p)
	}
	if tags := cur.TagsOf(number); len(tags) > 0 {
		return Conflictf("version %d of service %q is tagged %s; move or remove the tag first", number, service, strings.Join(tags, ", "))
	}
	for i, r := range cur.Rules {
		if r.Tag == "" && r.Version == number {
			return Conflictf("version %d of service %q is the target of request rule %d (%s); change or remove the rule first", number, service, i+1, r)
		}
	}
	if m := cur.Mirror; m != nil && m.Version == number {
		return Conflictf("version %d of service %q receives mirrored requests; turn the mirror off first (wisp traffic mirror %s --off)", number, service, service)
	}
	return nil
}

// CheckTraffic validates t for service (exists reports its versions) and
// returns it as it is stored: with empty collections instead of nil ones.
func CheckTraffic(service string, t Traffic, exists func(int) bool) (Traffic, error) {
	if err := t.Validate(service, exists); err != nil {
		return Traffic{}, err
	}
	return t.Normalize(), nil
}

// CheckIfMatch checks the condition of a conditional traffic write against
// the current entry (nil when the service has none): ifEntry 0 is no
// condition, AnyEntry requires a current entry, and an entry ID requires
// that it is the current one. A condition that does not hold is
// ErrPreconditionFailed.
func CheckIfMatch(service string, ifEntry int64, cur *TrafficEntry) error {
	switch {
	case ifEntry == 0:
		return nil
	case ifEntry == AnyEntry && cur != nil:
		return nil
	case ifEntry == AnyEntry:
		return PreconditionFailedf("service %q has no traffic entry yet, and If-Match: * asks for one", service)
	case ifEntry < 0:
		return Invalidf("If-Match", "If-Match must name a traffic entry ID (1 or more) or be \"*\", got %d", ifEntry)
	case cur == nil:
		return PreconditionFailedf("service %q has no traffic entry yet, so entry %d is not the current one", service, ifEntry)
	case cur.ID != ifEntry:
		return PreconditionFailedf("the traffic of service %q has changed: the current entry is %d, not %d; read it again and retry", service, cur.ID, ifEntry)
	}
	return nil
}

// RollbackTraffic decides the entry that rolling service back appends: a
// copy of target, the entry toID or, with toID 0, the entry before the
// current one cur. cur is nil when the service has no traffic (ErrNotFound),
// target nil when there is no such entry of this service. exists reports
// the service's versions now. An entry that names a deleted version cannot
// come back (ErrConflict). The copy's message says what it restores, cut to
// the limit of a message.
func RollbackTraffic(service string, toID int64, cur, target *TrafficEntry, exists func(int) bool) (Traffic, error) {
	switch {
	case toID < 0:
		return Traffic{}, Invalidf("to_entry", "to_entry must be a traffic entry ID, got %d", toID)
	case cur == nil:
		return Traffic{}, NoTraffic(service)
	case target == nil && toID == 0:
		return Traffic{}, Conflictf("service %q has no earlier traffic entry to roll back to", service)
	case target == nil:
		return Traffic{}, NotFoundf("service %q has no traffic entry %d", service, toID)
	}
	if err := target.Validate(service, exists); err != nil {
		return Traffic{}, Conflictf("cannot roll back service %q to traffic entry %d: %v", service, target.ID, err)
	}
	t := target.Traffic
	t.Message = fmt.Sprintf("rollback to entry %d", target.ID)
	if target.Message != "" {
		t.Message += ": " + target.Message
	}
	if len(t.Message) > maxTrafficMsgLen {
		// Cut at the byte limit, but not inside a UTF-8 sequence.
		cut := maxTrafficMsgLen
		for cut > 0 && !utf8.RuneStart(t.Message[cut]) {
			cut--
		}
		t.Message = t.Message[:cut]
	}
	return t.Normalize(), nil
}
