package cloudevent

import (
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wisp-run/wisp/internal/core"
)

// Media types of the structured and batched content modes
// (formats/json-format.md, sections 3 and 4).
const (
	MediaType      = "application/cloudevents+json"
	BatchMediaType = "application/cloudevents-batch+json"
)

// headerPrefix starts the header of each attribute in binary mode.
const headerPrefix = "ce-"

// mode of an HTTP message (http-protocol-binding.md, section 3).
type mode int

const (
	binary mode = iota
	structured
	batch
)

// modeOf picks the content mode from the Content-Type: the media types
// above, an error for another event format (XML, Protobuf, Avro), or
// binary for any other type.
func modeOf(h http.Header) (mode, error) {
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		// A malformed Content-Type is a malformed datacontenttype of a
		// binary event; Validate says so.
		return binary, nil
	}
	var m mode
	switch {
	case mt == MediaType:
		m = structured
	case mt == BatchMediaType:
		m = batch
	case mt == "application/cloudevents" || strings.HasPrefix(mt, "application/cloudevents+") || strings.HasPrefix(mt, "application/cloudevents-batch"):
		return binary, core.Invalidf(AttrDataContentType, "cloudevent: Content-Type %q is an event format Wisp does not read; send JSON as %s or %s", mt, MediaType, BatchMediaType)
	default:
		return binary, nil
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return m, core.Invalidf(AttrDataContentType, "cloudevent: Content-Type %s has charset %q; JSON is UTF-8 (RFC 8259)", mt, cs)
	}
	return m, nil
}

// FromHTTP reads one event from an HTTP request or response: a structured
// one when the Content-Type is application/cloudevents+json, otherwise a
// binary one, whose attributes are the ce-* headers (case-insensitive,
// their values %-decoded), whose datacontenttype is the Content-Type and
// whose data is the body. A batch (application/cloudevents-batch+json) is
// refused: BatchFromHTTP reads it. The event is valid (Validate); every
// error is a *core.Error of kind core.ErrInvalid.
func FromHTTP(h http.Header, body []byte) (Event, error) {
	m, err := modeOf(h)
	if err != nil {
		return Event{}, err
	}
	switch m {
	case structured:
		return parseStructured(body)
	case batch:
		return Event{}, core.Invalidf(AttrDataContentType, "cloudevent: a batch of events (Content-Type %s) is not accepted here; send one event per request, structured (%s) or binary (ce-* headers)", BatchMediaType, MediaType)
	}
	return fromBinary(h, body)
}

// BatchFromHTTP reads the events of a batch (Content-Type
// application/cloudevents-batch+json: a JSON array of structured events,
// possibly empty); a message in another mode is read by FromHTTP as a
// batch of one. Every event is valid; an error names the event by its
// index in the array.
func BatchFromHTTP(h http.Header, body []byte) ([]Event, error) {
	m, err := modeOf(h)
	if err != nil {
		return nil, err
	}
	if m != batch {
		e, err := FromHTTP(h, body)
		if err != nil {
			return nil, err
		}
		return []Event{e}, nil
	}
	return parseBatch(body)
}

// fromBinary reads an event in binary mode (http-protocol-binding.md,
// section 3.1).
func fromBinary(h http.Header, body []byte) (Event, error) {
	// Header names are case-insensitive; two keys of h may differ only
	// in case when h was not built by net/http.
	headers := map[string][]string{}
	for key, values := range h {
		if lower := strings.ToLower(key); strings.HasPrefix(lower, headerPrefix) {
			headers[lower] = append(headers[lower], values...)
		}
	}
	if _, ok := headers[headerPrefix+AttrSpecVersion]; !ok {
		return Event{}, core.Invalidf(AttrSpecVersion, "cloudevent: the request is neither a structured nor a binary CloudEvent: "+
			"send the event as JSON with Content-Type: %s, or its attributes as headers ce-specversion: 1.0, ce-id, ce-source and ce-type with the data as the body", MediaType)
	}
	var e Event
	for _, header := range sortedKeys(headers) {
		name := strings.TrimPrefix(header, headerPrefix)
		if err := checkName(name); err != nil {
			return Event{}, core.Invalidf(name, "cloudevent: header %s: attribute name %q: names are lower-case letters a-z and digits 0-9", header, name)
		}
		if name == AttrDataContentType {
			return Event{}, core.Invalidf(name, "cloudevent: header %s: in binary mode the datacontenttype is the Content-Type header", header)
		}
		values := headers[header]
		if len(values) != 1 {
			return Event{}, core.Invalidf(name, "cloudevent: header %s appears %d times; an attribute has one value", header, len(values))
		}
		v, err := percentDecode(header, name, values[0])
		if err != nil {
			return Event{}, err
		}
		if err := setAttr(&e, name, v); err != nil {
			return Event{}, err
		}
	}
	e.DataContentType = h.Get("Content-Type")
	if len(body) > 0 {
		e.Data = body
	}
	if err := e.Validate(); err != nil {
		return Event{}, err
	}
	return e, nil
}

// setAttr sets attribute name to v, as read from a header or a JSON
// string. An optional attribute that is present must not be empty
// (spec.md, "Optional Attributes").
func setAttr(e *Event, name, v string) error {
	switch name {
	case AttrID:
		e.ID = v
	case AttrSource:
		e.Source = v
	case AttrSpecVersion:
		e.SpecVersion = v
	case AttrType:
		e.Type = v
	case AttrDataContentType, AttrDataSchema, AttrSubject, AttrTime:
		if v == "" {
			return core.Invalidf(name, "cloudevent: attribute %q is present but empty; leave it out instead", name)
		}
		switch name {
		case AttrDataContentType:
			e.DataContentType = v
		case AttrDataSchema:
			e.DataSchema = v
		case AttrSubject:
			e.Subject = v
		case AttrTime:
			t, err := parseTime(v)
			if err != nil {
				return err
			}
			e.Time = t
		}
	default:
		if e.Extensions == nil {
			e.Extensions = map[string]string{}
		}
		e.Extensions[name] = v
	}
	return nil
}

// parseTime reads a Timestamp (RFC 3339), strictly: Time.UnmarshalText
// refuses what RFC 3339 does not allow, which time.Parse lets through.
func parseTime(v string) (time.Time, error) {
	var t time.Time
	if err := t.UnmarshalText([]byte(v)); err != nil {
		return time.Time{}, core.Invalidf(AttrTime, "cloudevent: attribute %q is %q, not an RFC 3339 timestamp such as 2006-01-02T15:04:05Z", AttrTime, v)
	}
	return t.UTC(), nil
}

// percentDecode decodes a header value (http-protocol-binding.md, section
// 3.1.3.2): only %XX sequences are decoded (a '+' stays a '+'), and the
// result must be UTF-8.
func percentDecode(header, name, v string) (string, error) {
	if strings.IndexByte(v, '%') < 0 {
		if !utf8.ValidString(v) {
			return "", core.Invalidf(name, "cloudevent: header %s: value is not valid UTF-8", header)
		}
		return v, nil
	}
	var b strings.Builder
	b.Grow(len(v))
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(v) || !isHex(v[i+1]) || !isHex(v[i+2]) {
			return "", core.Invalidf(name, "cloudevent: header %s: bad percent-encoding %q", header, v[i:min(i+3, len(v))])
		}
		b.WriteByte(unhex(v[i+1])<<4 | unhex(v[i+2]))
		i += 2
	}
	if !utf8.ValidString(b.String()) {
		return "", core.Invalidf(name, "cloudevent: header %s: value is not valid UTF-8 after percent-decoding", header)
	}
	return b.String(), nil
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// percentEncode encodes a header value (http-protocol-binding.md, section
// 3.1.3.2): space, '"', '%' and every byte outside printable ASCII
// (U+0021 to U+007E) become %XX of the UTF-8 bytes.
func percentEncode(v string) string {
	n := 0
	for i := range len(v) {
		if mustEncode(v[i]) {
			n++
		}
	}
	if n == 0 {
		return v
	}
	const digits = "0123456789ABCDEF"
	b := make([]byte, 0, len(v)+2*n)
	for i := range len(v) {
		c := v[i]
		if mustEncode(c) {
			b = append(b, '%', digits[c>>4], digits[c&0xf])
			continue
		}
		b = append(b, c)
	}
	return string(b)
}

func mustEncode(c byte) bool { return c <= ' ' || c >= 0x7f || c == '"' || c == '%' }

// ToHTTP writes e into h in binary mode, for delivery: a ce-* header for
// each attribute and extension, %-encoded, the time in RFC 3339 in UTC,
// the Content-Type from datacontenttype. It first removes every ce-*
// header and the Content-Type h had, so h says nothing the event does
// not. It returns the body: e.Data. e should be valid (Validate).
func (e Event) ToHTTP(h http.Header) []byte {
	for k := range h {
		if strings.HasPrefix(strings.ToLower(k), headerPrefix) {
			delete(h, k)
		}
	}
	h.Del("Content-Type")
	set := func(name, v string) { h.Set(headerPrefix+name, percentEncode(v)) }
	set(AttrID, e.ID)
	set(AttrSource, e.Source)
	set(AttrSpecVersion, e.SpecVersion)
	set(AttrType, e.Type)
	if e.Subject != "" {
		set(AttrSubject, e.Subject)
	}
	if !e.Time.IsZero() {
		set(AttrTime, e.Time.UTC().Format(time.RFC3339Nano))
	}
	if e.DataSchema != "" {
		set(AttrDataSchema, e.DataSchema)
	}
	for _, name := range sortedKeys(e.Extensions) {
		set(name, e.Extensions[name])
	}
	if e.DataContentType != "" {
		h.Set("Content-Type", e.DataContentType)
	}
	return e.Data
}
