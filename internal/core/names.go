package core

import (
	"fmt"
	"strconv"
	"strings"
)

// MaxLabelLen is the longest DNS label (RFC 1035, section 2.3.4).
const MaxLabelLen = 63

// TagSeparator joins a tag or version to a service in a host name:
// canary--hello.localhost reaches the version tagged canary.
const TagSeparator = "--"

// ValidateServiceName checks that name is a DNS label that starts with a
// letter: lowercase letters, digits and '-', 1–63 characters, not ending with
// '-'. A service name may not contain "--", which separates tags from services
// in host names.
func ValidateServiceName(name string) error {
	if err := checkLabel("name", "service name", name, MaxLabelLen); err != nil {
		return err
	}
	if strings.Contains(name, TagSeparator) {
		return Invalidf("name", "service name %q must not contain %q: it separates tags from services in host names", name, TagSeparator)
	}
	return nil
}

// ValidateTagName checks a traffic tag for service: a DNS label like a service
// name, short enough that "<tag>--<service>" is still one label, and not of the
// form v<N>, which already names version N in host names.
func ValidateTagName(tag, service string) error {
	field := "tags." + tag
	if err := checkLabel(field, "tag", tag, MaxLabelLen); err != nil {
		return err
	}
	if strings.Contains(tag, TagSeparator) {
		return Invalidf(field, "tag %q must not contain %q", tag, TagSeparator)
	}
	if _, ok := ParseVersionLabel(tag); ok {
		return Invalidf(field, "tag %q is reserved: v<N>--%s already reaches version N", tag, service)
	}
	if n := len(tag) + len(TagSeparator) + len(service); n > MaxLabelLen {
		return Invalidf(field, "tag %q is too long for service %q: %q is %d characters, the limit for a host label is %d",
			tag, service, tag+TagSeparator+service, n, MaxLabelLen)
	}
	return nil
}

// ParseVersionNumber reads a version given as "7" or "v7" (at least 1), the
// way the API's paths, the CLI's arguments and the Wisp-Version header take it.
func ParseVersionNumber(s string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimPrefix(s, "v"))
	return n, err == nil && n >= 1
}

// ParseVersionLabel parses "v7" as 7. It accepts no sign and no leading zero.
func ParseVersionLabel(s string) (int, bool) {
	if len(s) < 2 || s[0] != 'v' || s[1] == '0' {
		return 0, false
	}
	for _, c := range s[1:] {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s[1:])
	if err != nil {
		return 0, false
	}
	return n, true
}

func checkLabel(field, what, s string, maxLen int) error {
	switch {
	case s == "":
		return Invalidf(field, "%s is required", what)
	case len(s) > maxLen:
		return Invalidf(field, "%s %q is %d characters long; the limit is %d", what, truncate(s, 80), len(s), maxLen)
	case s[0] < 'a' || s[0] > 'z':
		return Invalidf(field, "%s %q must start with a lowercase letter", what, truncate(s, 80))
	case s[len(s)-1] == '-':
		return Invalidf(field, "%s %q must not end with '-'", what, s)
	}
	for i, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return Invalidf(field, "%s %q has %s at position %d; use lowercase letters, digits and '-'", what, truncate(s, 80), quoteRune(c), i+1)
		}
	}
	return nil
}

func quoteRune(c rune) string {
	return fmt.Sprintf("%q", c)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ValidateObjectName checks the name of a trigger or a schedule (what
// names it, for messages): a DNS label like a service name.
func ValidateObjectName(what, name string) error {
	return checkLabel("name", what+" name", name, MaxLabelLen)
}
