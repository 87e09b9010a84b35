package cloudevent

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wisp-run/wisp/internal/core"
)

// Members of the JSON format that carry the data (json-format.md, section
// 3.1).
const (
	memberData       = "data"
	memberDataBase64 = "data_base64"
)

// StructuredJSON is the event in the JSON format, as the body of a
// structured-mode message and for storage: FromHTTP with Content-Type
// application/cloudevents+json reads it back into an equal Event. Data of
// a JSON datacontenttype that is one JSON value goes in data byte for
// byte; other text data goes in data as a string; anything else (data
// without a datacontenttype, bytes that are not UTF-8) in data_base64. It
// fails if the event is not valid.
func (e Event) StructuredJSON() ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 256+len(e.Data)*4/3)
	b = append(b, '{')
	member := func(name, v string) {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = appendString(b, name)
		b = append(b, ':')
		b = appendString(b, v)
	}
	member(AttrSpecVersion, e.SpecVersion)
	member(AttrID, e.ID)
	member(AttrSource, e.Source)
	member(AttrType, e.Type)
	for _, a := range []struct{ name, v string }{
		{AttrDataContentType, e.DataContentType}, {AttrDataSchema, e.DataSchema}, {AttrSubject, e.Subject},
	} {
		if a.v != "" {
			member(a.name, a.v)
		}
	}
	if !e.Time.IsZero() {
		member(AttrTime, e.Time.UTC().Format(time.RFC3339Nano))
	}
	for _, name := range sortedKeys(e.Extensions) {
		member(name, e.Extensions[name])
	}
	if e.Data != nil {
		switch isJSON, ok := jsonType(e.DataContentType); {
		case ok && isJSON && oneJSONValue(e.Data):
			b = append(b, `,"data":`...)
			b = append(b, e.Data...)
		case ok && !isJSON && utf8.Valid(e.Data):
			member(memberData, string(e.Data))
		default:
			member(memberDataBase64, base64.StdEncoding.EncodeToString(e.Data))
		}
	}
	return append(b, '}'), nil
}

// MarshalJSON is StructuredJSON, for an Event inside another JSON value.
// encoding/json compacts what it returns, and with it JSON data; use
// StructuredJSON to keep the data byte for byte.
func (e Event) MarshalJSON() ([]byte, error) { return e.StructuredJSON() }

// UnmarshalJSON reads an event in the JSON format, as FromHTTP reads a
// structured one.
func (e *Event) UnmarshalJSON(b []byte) error {
	ev, err := parseStructured(b)
	if err != nil {
		return err
	}
	*e = ev
	return nil
}

// appendString appends s as a JSON string, without the HTML escapes of
// json.Marshal. s is valid UTF-8 (Validate).
func appendString(b []byte, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}

// jsonType reports whether the media type ct is JSON (application/json,
// text/json or a +json suffix, RFC 6839); ok is false for no media type.
func jsonType(ct string) (isJSON, ok bool) {
	if ct == "" {
		return false, false
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false, false
	}
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json"), true
}

// oneJSONValue reports whether b reads back from a data member unchanged:
// one JSON value in UTF-8 with no white space around it, and not null,
// which reads as no data.
func oneJSONValue(b []byte) bool {
	return len(b) > 0 && len(bytes.Trim(b, " \t\r\n")) == len(b) && string(b) != "null" && utf8.Valid(b) && json.Valid(b)
}

// parseStructured reads one event in the JSON format (json-format.md).
func parseStructured(body []byte) (Event, error) {
	if !utf8.Valid(body) {
		return Event{}, core.Invalidf("", "cloudevent: the structured event is not valid UTF-8; JSON is UTF-8 (RFC 8259)")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	e, err := decodeObject(dec)
	if err != nil {
		return Event{}, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Event{}, core.Invalidf("", "cloudevent: unexpected data after the JSON object of the event; send exactly one object")
	}
	return e, nil
}

// parseBatch reads a batch: a JSON array of events (json-format.md,
// section 4).
func parseBatch(body []byte) ([]Event, error) {
	if !utf8.Valid(body) {
		return nil, core.Invalidf("", "cloudevent: the batch is not valid UTF-8; JSON is UTF-8 (RFC 8259)")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonError("the batch", err)
	}
	if tok != json.Delim('[') {
		return nil, core.Invalidf("", "cloudevent: a batch must be a JSON array of events, got %s", kindOfToken(tok))
	}
	events := []Event{}
	for dec.More() {
		e, err := decodeObject(dec)
		if err != nil {
			var ce *core.Error
			if errors.As(err, &ce) {
				return nil, core.Invalidf(ce.Field, "cloudevent: batch event %d: %s", len(events), strings.TrimPrefix(ce.Message, "cloudevent: "))
			}
			return nil, err
		}
		events = append(events, e)
	}
	if _, err := dec.Token(); err != nil { // the closing ']'
		return nil, jsonError("the batch", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, core.Invalidf("", "cloudevent: unexpected data after the JSON array of the batch")
	}
	return events, nil
}

// decodeObject reads the next JSON value of dec as an event and validates
// it.
func decodeObject(dec *json.Decoder) (Event, error) {
	tok, err := dec.Token()
	if err != nil {
		return Event{}, jsonError("the event", err)
	}
	if tok != json.Delim('{') {
		return Event{}, core.Invalidf("", "cloudevent: a structured event must be a JSON object, got %s", kindOfToken(tok))
	}
	var (
		e                  Event
		data, dataBase64   json.RawMessage
		hasData, hasBase64 bool
		seen               = map[string]bool{}
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Event{}, jsonError("the event", err)
		}
		name := tok.(string) // a key of an object is a string
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return Event{}, jsonError("the event", err)
		}
		if seen[name] {
			return Event{}, core.Invalidf(name, "cloudevent: member %q appears twice in the event", name)
		}
		seen[name] = true
		kind := kindOf(raw)
		if kind == "null" {
			continue // unset (json-format.md, section 2.2)
		}
		switch name {
		case memberData:
			data, hasData = raw, true
		case memberDataBase64:
			if kind != "a string" {
				return Event{}, core.Invalidf(name, "cloudevent: member %q must be a JSON string of base64, got %s", name, kind)
			}
			dataBase64, hasBase64 = raw, true
		case AttrID, AttrSource, AttrSpecVersion, AttrType, AttrDataContentType, AttrDataSchema, AttrSubject, AttrTime:
			if kind != "a string" {
				return Event{}, core.Invalidf(name, "cloudevent: attribute %q must be a JSON string, got %s", name, kind)
			}
			if err := setAttr(&e, name, unquote(raw)); err != nil {
				return Event{}, err
			}
		default:
			if err := checkExtensionName(name); err != nil {
				return Event{}, err
			}
			var v string
			switch kind {
			case "a string":
				v = unquote(raw)
			case "a boolean":
				v = string(raw)
			case "a number":
				// An Integer is 32 bits, in JSON without a fraction or an
				// exponent (json-format.md, section 2.2).
				if _, err := strconv.ParseInt(string(raw), 10, 32); err != nil {
					return Event{}, core.Invalidf(name, "cloudevent: extension attribute %q is the number %s; a number must be an integer from -2147483648 to 2147483647", name, raw)
				}
				v = string(raw)
			default:
				return Event{}, core.Invalidf(name, "cloudevent: extension attribute %q must be a string, a number or a boolean, got %s", name, kind)
			}
			if err := setAttr(&e, name, v); err != nil {
				return Event{}, err
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return Event{}, jsonError("the event", err)
	}
	switch {
	case hasData && hasBase64:
		return Event{}, core.Invalidf(memberData, "cloudevent: the event has both %q and %q; send one", memberData, memberDataBase64)
	case hasBase64:
		s := unquote(dataBase64)
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return Event{}, core.Invalidf(memberDataBase64, "cloudevent: member %q is not base64 (RFC 4648, with padding): %v", memberDataBase64, err)
		}
		e.Data = b
	case hasData:
		// A data of a JSON type (or of none, which means JSON) is the JSON
		// value; a string of another type is its text (json-format.md,
		// section 3.1).
		isJSON, ok := jsonType(e.DataContentType)
		switch {
		case !ok && e.DataContentType == "":
			e.DataContentType = "application/json"
			e.Data = data
		case !isJSON && kindOf(data) == "a string":
			e.Data = []byte(unquote(data))
		default:
			e.Data = data
		}
	}
	if len(e.Data) == 0 {
		e.Data = nil
	}
	if err := e.Validate(); err != nil {
		return Event{}, err
	}
	return e, nil
}

// unquote is the value of the JSON string raw.
func unquote(raw json.RawMessage) string {
	var s string
	_ = json.Unmarshal(raw, &s) // raw is a string the decoder has read
	return s
}

// kindOf names the kind of the JSON value raw for errors.
func kindOf(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

func kindOfToken(tok json.Token) string {
	switch tok.(type) {
	case json.Delim:
		if tok == json.Delim('[') {
			return "an array"
		}
		return "an object"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return "a number"
}

// jsonError says what is wrong with the JSON of what.
func jsonError(what string, err error) error {
	var syntax *json.SyntaxError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return core.Invalidf("", "cloudevent: malformed JSON: %s ends early", what)
	case errors.As(err, &syntax):
		return core.Invalidf("", "cloudevent: malformed JSON at byte %d of %s: %s", syntax.Offset, what, strings.TrimPrefix(syntax.Error(), "json: "))
	}
	return core.Invalidf("", "cloudevent: malformed JSON in %s: %s", what, strings.TrimPrefix(fmt.Sprint(err), "json: "))
}
