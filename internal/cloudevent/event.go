package cloudevent

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"mime"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wisp-run/wisp/internal/core"
)

// SpecVersion is the only CloudEvents version Wisp accepts.
const SpecVersion = "1.0"

// Names of the context attributes (spec.md, "Context Attributes").
const (
	AttrID              = "id"
	AttrSource          = "source"
	AttrSpecVersion     = "specversion"
	AttrType            = "type"
	AttrDataContentType = "datacontenttype"
	AttrDataSchema      = "dataschema"
	AttrSubject         = "subject"
	AttrTime            = "time"
)

// reserved are the names an extension may not take: the context attributes,
// and data, which the JSON format uses for the payload.
var reserved = map[string]bool{
	AttrID: true, AttrSource: true, AttrSpecVersion: true, AttrType: true,
	AttrDataContentType: true, AttrDataSchema: true, AttrSubject: true, AttrTime: true,
	"data": true,
}

// Event is one CloudEvent. An empty string or a zero Time is an absent
// attribute.
type Event struct {
	ID              string
	Source          string
	SpecVersion     string
	Type            string
	DataContentType string
	DataSchema      string
	Subject         string
	Time            time.Time
	// Extensions are the extension attributes by name, their values in
	// the canonical string form of the CloudEvents type system.
	Extensions map[string]string
	// Data is the payload as bytes: the body in binary mode; in the
	// structured one the JSON value of data as it was sent (the text of a
	// JSON string, when datacontenttype is not JSON) or the decoded
	// data_base64. Nil means no data.
	Data []byte
}

// Validate checks the event against CloudEvents 1.0: the required
// attributes are there, specversion is 1.0, source is a URI-reference,
// dataschema an absolute URI, datacontenttype a media type (RFC 2046), the
// time fits RFC 3339, extension names are lower-case letters and digits and
// not a reserved name, and every string is Unicode without control
// characters. The error is a *core.Error whose Field is the attribute.
func (e Event) Validate() error {
	switch e.SpecVersion {
	case SpecVersion:
	case "":
		return missing(AttrSpecVersion)
	default:
		return core.Invalidf(AttrSpecVersion, "cloudevent: attribute %q is %q; Wisp accepts %q", AttrSpecVersion, e.SpecVersion, SpecVersion)
	}
	for _, a := range []struct{ name, value string }{{AttrID, e.ID}, {AttrSource, e.Source}, {AttrType, e.Type}} {
		if a.value == "" {
			return missing(a.name)
		}
	}
	for _, a := range []struct{ name, value string }{
		{AttrID, e.ID}, {AttrSource, e.Source}, {AttrType, e.Type},
		{AttrDataContentType, e.DataContentType}, {AttrDataSchema, e.DataSchema}, {AttrSubject, e.Subject},
	} {
		if err := checkString(a.name, a.value); err != nil {
			return err
		}
	}
	if err := checkURIReference(AttrSource, e.Source); err != nil {
		return err
	}
	if e.DataSchema != "" {
		if err := checkURIReference(AttrDataSchema, e.DataSchema); err != nil {
			return err
		}
		if u, _ := url.Parse(e.DataSchema); !u.IsAbs() {
			return core.Invalidf(AttrDataSchema, "cloudevent: attribute %q is %q; it must be an absolute URI, with a scheme such as https:", AttrDataSchema, e.DataSchema)
		}
	}
	if e.DataContentType != "" {
		// mime.ParseMediaType takes a type without a subtype; RFC 2046
		// has both.
		if mt, _, err := mime.ParseMediaType(e.DataContentType); err != nil || !strings.Contains(mt, "/") {
			return core.Invalidf(AttrDataContentType, "cloudevent: attribute %q is %q, not a media type such as application/json (RFC 2046)", AttrDataContentType, e.DataContentType)
		}
	}
	if !e.Time.IsZero() {
		// RFC 3339 has four digits for the year; Wisp writes the time in UTC.
		if y := e.Time.UTC().Year(); y < 0 || y > 9999 {
			return core.Invalidf(AttrTime, "cloudevent: attribute %q is in the year %d (UTC); RFC 3339 has the years 0000 to 9999", AttrTime, y)
		}
	}
	for _, name := range sortedKeys(e.Extensions) {
		if err := checkExtensionName(name); err != nil {
			return err
		}
		if err := checkString(name, e.Extensions[name]); err != nil {
			return err
		}
	}
	return nil
}

func missing(name string) error {
	return core.Invalidf(name, "cloudevent: required attribute %q is missing", name)
}

// checkExtensionName checks the name of an extension attribute: lower-case
// ASCII letters and digits (spec.md, "Attribute Naming Convention"), and not
// one the spec or the JSON format reserves. The spec asks for at most 20
// characters; longer names are accepted.
func checkExtensionName(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if reserved[name] {
		return core.Invalidf(name, "cloudevent: extension attribute %q has a reserved name", name)
	}
	return nil
}

func checkName(name string) error {
	if name == "" {
		return core.Invalidf(name, "cloudevent: attribute name is empty")
	}
	for i := range len(name) {
		if c := name[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return core.Invalidf(name, "cloudevent: attribute name %q has %q; names are lower-case letters a-z and digits 0-9", name, rune(c))
		}
	}
	return nil
}

// checkString checks a String of the CloudEvents type system: Unicode
// without control characters, surrogates or noncharacters (spec.md, "Type
// System").
func checkString(name, s string) error {
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !validRuneAt(s, i):
			return core.Invalidf(name, "cloudevent: attribute %q is not valid UTF-8", name)
		case r <= 0x1f || 0x7f <= r && r <= 0x9f:
			return core.Invalidf(name, "cloudevent: attribute %q contains the control character %U", name, r)
		case 0xfdd0 <= r && r <= 0xfdef || r&0xfffe == 0xfffe:
			return core.Invalidf(name, "cloudevent: attribute %q contains the noncharacter %U", name, r)
		}
	}
	return nil
}

// validRuneAt reports whether the U+FFFD at s[i] was written as such rather
// than standing for a byte that is not UTF-8.
func validRuneAt(s string, i int) bool {
	_, size := utf8.DecodeRuneInString(s[i:])
	return size == 3
}

// checkURIReference checks that s is a URI-reference (RFC 3986, section
// 4.1): only the characters a URI may hold, %-escapes of two hex digits,
// and a shape net/url accepts.
func checkURIReference(name, s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return core.Invalidf(name, "cloudevent: attribute %q is %q, not a URI-reference: bad %%-escape at byte %d", name, s, i)
			}
		case !uriChar(c):
			return core.Invalidf(name, "cloudevent: attribute %q is %q, not a URI-reference: %q must be %%-encoded", name, s, string(rune(c)))
		}
	}
	if _, err := url.Parse(s); err != nil {
		return core.Invalidf(name, "cloudevent: attribute %q is %q, not a URI-reference: %v", name, s, err)
	}
	return nil
}

// uriChar reports whether c may stand unescaped in a URI: unreserved,
// gen-delims or sub-delims (RFC 3986, section 2).
func uriChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', '~', ':', '/', '?', '#', '[', ']', '@', '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=':
		return true
	}
	return false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// DedupKey is a short key that is the same for every copy of an event and
// differs between events: the first 32 hex digits of SHA-256 over source
// and id, which together identify an event (spec.md, "id"). It is safe as
// a NATS message ID (Nats-Msg-Id).
func DedupKey(e Event) string {
	sum := sha256.Sum256([]byte(e.Source + "\x00" + e.ID))
	return hex.EncodeToString(sum[:16])
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
