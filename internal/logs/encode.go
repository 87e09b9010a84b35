package logs

import (
	"errors"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/wisp-run/wisp/internal/core"
)

// appendEntry appends e as encoding/json would marshal it (the same bytes:
// field order, omitempty, escaping), without reflection: at 10,000 lines/s
// json.Marshal was about a sixth of the capture's CPU (docs/benchmarks.md).
// encode_test.go holds it to json.Marshal's output.
func appendEntry(b []byte, e *core.LogEntry) ([]byte, error) {
	if y := e.Time.Year(); y < 0 || y > 9999 {
		return b, errors.New("logs: entry time outside years 0-9999")
	}
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, `,"time":"`...)
	b = e.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","kind":`...)
	b = appendString(b, string(e.Kind))
	b = append(b, `,"service":`...)
	b = appendString(b, e.Service)
	if e.Version != 0 {
		b = append(b, `,"version":`...)
		b = strconv.AppendInt(b, int64(e.Version), 10)
	}
	if e.Instance != "" {
		b = append(b, `,"instance":`...)
		b = appendString(b, e.Instance)
	}
	if e.Stream != "" {
		b = append(b, `,"stream":`...)
		b = appendString(b, e.Stream)
	}
	if e.Event != "" {
		b = append(b, `,"event":`...)
		b = appendString(b, e.Event)
	}
	b = append(b, `,"message":`...)
	b = appendString(b, e.Message)
	if len(e.Fields) > 0 {
		b = append(b, `,"fields":{`...)
		keys := make([]string, 0, len(e.Fields))
		for k := range e.Fields {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, e.Fields[k])
		}
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string the way encoding/json writes it:
// HTML-safe (<, >, & as \u00XX), U+2028 and U+2029 escaped, invalid UTF-8
// as U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
