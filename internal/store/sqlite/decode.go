package sqlite

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/wisp-run/wisp/internal/core"
)

// Reading every service's state at once (ServiceStates, 10,000 services
// and more) is bound by the cost per row and per column. The helpers here
// cut what database/sql and encoding/json spend on the columns Wisp wrote
// itself; anything they do not recognise goes the general way.

// intCol, int64Col and floatCol scan numeric columns without database/sql's
// conversions, which format an int64 as a string and parse it back for an
// *int, and reflect for an *int64. Each holds one pointer, so passing it as
// an interface allocates nothing.
type (
	intCol   struct{ p *int }
	int64Col struct{ p *int64 }
	floatCol struct{ p *float64 }
)

func (c intCol) Scan(src any) error {
	n, ok := src.(int64)
	if !ok {
		return fmt.Errorf("want an integer column, got %T", src)
	}
	*c.p = int(n)
	return nil
}

func (c int64Col) Scan(src any) error {
	n, ok := src.(int64)
	if !ok {
		return fmt.Errorf("want an integer column, got %T", src)
	}
	*c.p = n
	return nil
}

func (c floatCol) Scan(src any) error {
	switch n := src.(type) {
	case float64:
		*c.p = n
	case int64:
		*c.p = float64(n)
	default:
		return fmt.Errorf("want a number column, got %T", src)
	}
	return nil
}

// decodeList decodes a JSON list of strings as json.Marshal writes it;
// an empty list is empty. Lists of strings without escapes are split
// directly: in compact JSON, `","` can only separate two such strings.
func decodeList(src string, empty []string) ([]string, error) {
	if src == "[]" {
		return empty, nil
	}
	if l, ok := splitList(src); ok {
		return l, nil
	}
	var l []string
	if err := json.Unmarshal([]byte(src), &l); err != nil {
		return nil, err
	}
	if len(l) == 0 {
		return empty, nil
	}
	return l, nil
}

func splitList(src string) ([]string, bool) {
	inner, ok := strings.CutPrefix(src, `["`)
	if !ok {
		return nil, false
	}
	if inner, ok = strings.CutSuffix(inner, `"]`); !ok {
		return nil, false
	}
	for i := 0; i < len(inner); i++ {
		if c := inner[i]; c == '\\' || c < ' ' {
			return nil, false
		}
	}
	if !utf8.ValidString(inner) { // encoding/json would replace bad bytes
		return nil, false
	}
	l := strings.Split(inner, `","`)
	for _, e := range l {
		// An unescaped quote cannot be part of a string: this is not
		// compact JSON (`["a", "b"]`).
		if strings.Contains(e, `"`) {
			return nil, false
		}
	}
	return l, true
}

// decodeWeights decodes a JSON list of weights as json.Marshal writes it:
// [{"version":1,"percent":90},{"version":2,"percent":10}].
func decodeWeights(src string) ([]core.Weight, error) {
	if w, ok := parseWeights(src); ok {
		return w, nil
	}
	var w []core.Weight
	if err := json.Unmarshal([]byte(src), &w); err != nil {
		return nil, err
	}
	if w == nil {
		w = []core.Weight{}
	}
	return w, nil
}

func parseWeights(src string) ([]core.Weight, bool) {
	rest, ok := strings.CutPrefix(src, "[")
	if !ok {
		return nil, false
	}
	out := make([]core.Weight, 0, strings.Count(src, "{"))
	if rest == "]" {
		return out, true
	}
	for {
		var w core.Weight
		if rest, ok = strings.CutPrefix(rest, `{"version":`); !ok {
			return nil, false
		}
		if w.Version, rest, ok = leadingInt(rest); !ok {
			return nil, false
		}
		if rest, ok = strings.CutPrefix(rest, `,"percent":`); !ok {
			return nil, false
		}
		if w.Percent, rest, ok = leadingInt(rest); !ok {
			return nil, false
		}
		if rest, ok = strings.CutPrefix(rest, "}"); !ok {
			return nil, false
		}
		out = append(out, w)
		switch {
		case rest == "]":
			return out, true
		case strings.HasPrefix(rest, ","):
			rest = rest[1:]
		default:
			return nil, false
		}
	}
}

// leadingInt reads the non-negative decimal number at the start of s, as
// JSON writes it (no leading zeros).
func leadingInt(s string) (int, string, bool) {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	if n == 0 || n > 9 || (n > 1 && s[0] == '0') {
		return 0, s, false
	}
	v, err := strconv.Atoi(s[:n])
	return v, s[n:], err == nil
}
