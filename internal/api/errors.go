package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"

	"github.com/wisp-run/wisp/internal/core"
)

// requestError is a malformed request: an error of the HTTP layer rather than
// of the domain.
type requestError struct {
	status int
	code   string
	field  string
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(field, format string, args ...any) error {
	return &requestError{status: http.StatusBadRequest, code: "bad_request", field: field, msg: fmt.Sprintf(format, args...)}
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// statusOf maps an error to its status, code, field and user message. It is
// the one place where errors become HTTP.
func statusOf(err error) (status int, d errorDetail) {
	var re *requestError
	if errors.As(err, &re) {
		return re.status, errorDetail{Code: re.code, Message: re.msg, Field: re.field}
	}
	var ce *core.Error
	if errors.As(err, &ce) {
		d = errorDetail{Message: ce.Message, Field: ce.Field}
		switch {
		case errors.Is(err, core.ErrInvalid):
			return http.StatusUnprocessableEntity, withCode(d, "invalid")
		case errors.Is(err, core.ErrNotFound):
			return http.StatusNotFound, withCode(d, "not_found")
		case errors.Is(err, core.ErrAlreadyExists):
			return http.StatusConflict, withCode(d, "already_exists")
		case errors.Is(err, core.ErrConflict):
			return http.StatusConflict, withCode(d, "conflict")
		case errors.Is(err, core.ErrUnauthorized):
			return http.StatusUnauthorized, withCode(d, "unauthorized")
		case errors.Is(err, core.ErrUnavailable):
			return http.StatusServiceUnavailable, withCode(d, "unavailable")
		case errors.Is(err, core.ErrTooLarge):
			return http.StatusRequestEntityTooLarge, withCode(d, "too_large")
		case errors.Is(err, core.ErrPreconditionFailed):
			return http.StatusPreconditionFailed, withCode(d, "precondition_failed")
		}
	}
	return http.StatusInternalServerError, errorDetail{Code: "internal", Message: "internal error; the server log has the details"}
}

func withCode(d errorDetail, code string) errorDetail { d.Code = code; return d }

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, d := statusOf(err)
	if status >= 500 {
		s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	_ = writeJSON(w, status, errorBody{Error: d})
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
	return nil
}

// decode reads one JSON value into v. It refuses bodies over the limit,
// unknown fields, wrong types and trailing data, each with a 4xx that names
// the problem. With allowEmpty, an empty body leaves v as it is.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any, allowEmpty bool) error {
	return s.decodeFrom(w, r.Body, v, allowEmpty, s.cfg.MaxBodyBytes)
}

// decodeFrom is decode for a body other than the request's own (a part of
// a multipart request), or with another limit than MaxBodyBytes.
func (s *Server) decodeFrom(w http.ResponseWriter, r io.ReadCloser, v any, allowEmpty bool, limit int64) error {
	body := http.MaxBytesReader(w, r, limit)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) && allowEmpty {
			return nil
		}
		return s.decodeError(err, v)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return s.decodeError(err, v)
		}
		return badRequest("", "unexpected data after the JSON body; send exactly one JSON object")
	}
	return nil
}

func (s *Server) decodeError(err error, v any) error {
	var (
		mbe    *http.MaxBytesError
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
		ce     *core.Error
	)
	switch {
	case errors.As(err, &mbe):
		return &requestError{status: http.StatusRequestEntityTooLarge, code: "too_large",
			msg: fmt.Sprintf("request body is larger than the limit of %d bytes", mbe.Limit)}
	case errors.Is(err, io.EOF):
		return badRequest("", "request body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("", "malformed JSON: the body ends before the JSON value does")
	case errors.As(err, &syntax):
		return badRequest("", "malformed JSON at byte %d: %s", syntax.Offset, strings.TrimPrefix(syntax.Error(), "json: "))
	case errors.As(err, &typ):
		if typ.Field == "" {
			return badRequest("", "request body must be a JSON object, got %s", jsonKind(typ.Value))
		}
		field := jsonPath(reflect.TypeOf(v), typ.Field)
		return badRequest(field, "field %q must be %s, got %s", field, describeType(typ.Type), jsonKind(typ.Value))
	case errors.As(err, &ce):
		return err
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		return badRequest(name, "unknown field %q; the accepted fields are %s", name, fieldNames(v))
	}
	// Errors from our own UnmarshalJSON methods (durations, sizes).
	return badRequest("", "invalid value: %s", strings.TrimPrefix(err.Error(), "json: "))
}

func jsonKind(value string) string {
	switch {
	case value == "number" || strings.HasPrefix(value, "number "):
		return "a number"
	case value == "string":
		return "a string"
	case value == "bool":
		return "a boolean"
	case value == "array":
		return "an array"
	case value == "object":
		return "an object"
	}
	return value
}

func describeType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array of " + strings.TrimPrefix(strings.TrimPrefix(describeType(t.Elem()), "a "), "an ") + "s"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return describeType(t.Elem())
	}
	return t.String()
}

// jsonPath turns encoding/json's path of a field ("VersionSpec.port") into
// the client's ("port"): the names of embedded structs are not in the JSON.
func jsonPath(t reflect.Type, path string) string {
	var out []string
	for _, seg := range strings.Split(path, ".") {
		for t != nil && t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t == nil || t.Kind() != reflect.Struct {
			out = append(out, seg)
			t = nil
			continue
		}
		if f, ok := t.FieldByName(seg); ok && f.Anonymous && f.Tag.Get("json") == "" {
			t = f.Type // an embedded struct: its fields are the parent's
			continue
		}
		out = append(out, seg)
		t = fieldType(t, seg)
	}
	return strings.Join(out, ".")
}

// fieldType is the type of the field of struct t whose JSON name is name,
// or nil. A field of t itself wins over one of an embedded struct, as in
// encoding/json.
func fieldType(t reflect.Type, name string) reflect.Type {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("json"), ",")[0]
		if !f.Anonymous && (tag == name || (tag == "" && f.Name == name)) {
			return f.Type
		}
	}
	for i := range t.NumField() {
		if f := t.Field(i); f.Anonymous && f.Tag.Get("json") == "" && f.Type.Kind() == reflect.Struct {
			if got := fieldType(f.Type, name); got != nil {
				return got
			}
		}
	}
	return nil
}

// fieldNames lists the JSON fields of the struct v points to.
func fieldNames(v any) string {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return "(none)"
	}
	var names []string
	seen := map[string]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("json"), ",")[0]
			if f.Anonymous && tag == "" {
				walk(f.Type)
				continue
			}
			if tag == "-" || !f.IsExported() {
				continue
			}
			if tag == "" {
				tag = f.Name
			}
			if !seen[tag] { // a field that shadows an embedded one
				seen[tag] = true
				names = append(names, tag)
			}
		}
	}
	walk(t)
	return strings.Join(names, ", ")
}
