package core

import (
	"sort"
	"strconv"
	"time"
)

// Weight gives Percent of a service's requests to version Number.
type Weight struct {
	Version int `json:"version"`
	Percent int `json:"percent"`
}

// Traffic is how a service splits its requests over its versions.
type Traffic struct {
	// Weights are whole percents ≥ 0 that sum to exactly 100, one per version.
	Weights []Weight `json:"weights"`
	// Tags name versions (canary → 2); a tag reaches its version at
	// <tag>--<service>.<domain> whatever its weight.
	Tags map[string]int `json:"tags"`
	// Sticky keeps a client on the version it first got (by cookie).
	Sticky bool `json:"sticky"`
	// Rules send matching requests to a version or tag before the
	// weighted pick (and before stickiness), first match wins; a host or
	// Wisp-Version pin still comes first. At most MaxRequestRules.
	Rules []RequestRule `json:"rules,omitempty"`
	// Mirror copies a share of the requests to another version and
	// compares the answers (mirror.go); nil when off.
	Mirror  *Mirror `json:"mirror,omitempty"`
	Message string  `json:"message,omitempty"`
}

// TrafficEntry is one entry of a service's append-only traffic history; the
// newest entry is the current split.
type TrafficEntry struct {
	ID      int64  `json:"id"`
	Service string `json:"service"`
	Traffic
	CreatedAt time.Time `json:"created_at"`
}

const (
	maxWeights       = 1000
	maxTags          = 1000
	maxTrafficMsgLen = 1024
)

// Normalize returns t with empty collections instead of nil ones, so that
// JSON always carries [] and {}. Rules are the exception: none is nil and
// left out of the JSON, so entries without rules read as they always did.
func (t Traffic) Normalize() Traffic {
	if len(t.Rules) == 0 {
		t.Rules = nil
	}
	if t.Weights == nil {
		t.Weights = []Weight{}
	}
	if t.Tags == nil {
		t.Tags = map[string]int{}
	}
	return t
}

// Validate checks t for service. exists reports whether the service has a
// version with the given number.
func (t Traffic) Validate(service string, exists func(number int) bool) error {
	if len(t.Weights) == 0 {
		return Invalidf("weights", "weights are required: give at least one version, for example [{\"version\":1,\"percent\":100}]")
	}
	if len(t.Weights) > maxWeights {
		return Invalidf("weights", "%d weights; the limit is %d", len(t.Weights), maxWeights)
	}
	sum := 0
	seen := make(map[int]bool, len(t.Weights))
	for i, w := range t.Weights {
		field := "weights[" + strconv.Itoa(i) + "]"
		switch {
		case w.Version < 1:
			return Invalidf(field+".version", "weights[%d]: version must be a version number of %s (1 or more), got %d", i, service, w.Version)
		case w.Percent < 0 || w.Percent > 100:
			return Invalidf(field+".percent", "weights[%d]: percent must be between 0 and 100, got %d", i, w.Percent)
		case seen[w.Version]:
			return Invalidf(field+".version", "weights[%d]: version %d is listed twice", i, w.Version)
		case !exists(w.Version):
			return Invalidf(field+".version", "weights[%d]: service %s has no version %d", i, service, w.Version)
		}
		seen[w.Version] = true
		sum += w.Percent
	}
	if sum != 100 {
		return Invalidf("weights", "weights must sum to exactly 100, got %d", sum)
	}
	if len(t.Tags) > maxTags {
		return Invalidf("tags", "%d tags; the limit is %d", len(t.Tags), maxTags)
	}
	for _, tag := range sortedKeys(t.Tags) {
		if err := ValidateTagName(tag, service); err != nil {
			return err
		}
		if n := t.Tags[tag]; !exists(n) {
			return Invalidf("tags."+tag, "tag %q: service %s has no version %d", tag, service, n)
		}
	}
	if err := t.validateRules(service, exists); err != nil {
		return err
	}
	if err := t.validateMirror(service, exists); err != nil {
		return err
	}
	if len(t.Message) > maxTrafficMsgLen {
		return Invalidf("message", "message is %d bytes long; the limit is %d", len(t.Message), maxTrafficMsgLen)
	}
	return nil
}

// PercentOf returns the percent that t gives version number.
func (t Traffic) PercentOf(number int) int {
	for _, w := range t.Weights {
		if w.Version == number {
			return w.Percent
		}
	}
	return 0
}

// TagsOf returns the tags that point at version number, sorted.
func (t Traffic) TagsOf(number int) []string {
	var tags []string
	for _, tag := range sortedKeys(t.Tags) {
		if t.Tags[tag] == number {
			tags = append(tags, tag)
		}
	}
	return tags
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Routable returns the numbers of the versions that get a share of the
// traffic, carry a tag, are a rule's target or the mirror's: the versions a
// request (or its copy) can reach.
func (t Traffic) Routable() map[int]bool {
	out := t.Served()
	if t.Mirror != nil {
		out[t.Mirror.Version] = true
	}
	return out
}

// Served returns the numbers of the versions whose answers clients get: a
// share of the traffic, a tag or a rule's target (Routable less a version
// that only receives mirrored copies).
func (t Traffic) Served() map[int]bool {
	out := map[int]bool{}
	for _, w := range t.Weights {
		if w.Percent > 0 {
			out[w.Version] = true
		}
	}
	for _, n := range t.Tags {
		out[n] = true
	}
	for n := range t.RuleTargets() {
		out[n] = true
	}
	return out
}
