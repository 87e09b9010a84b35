package core

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string ("30s", "5m0s"). It also reads a bare number as whole seconds, which
// is what most scripts send.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads "90s", "1m30s" or 90 (seconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := ParseDuration(s)
		if err != nil {
			return err
		}
		*d = v
		return nil
	}
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("a duration is a string like \"30s\" or a number of seconds, got %s", truncate(string(b), 40))
	}
	if math.IsNaN(secs) || math.Abs(secs) > float64(math.MaxInt64/int64(time.Second)) {
		return fmt.Errorf("duration %s seconds is out of range", string(b))
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

// ParseDuration parses a Go duration string, or a bare number of seconds.
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty duration; use a value like \"30s\" or \"5m\"")
	}
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(secs) || math.IsInf(secs, 0) || math.Abs(secs) > float64(math.MaxInt64/int64(time.Second)) {
			return 0, fmt.Errorf("duration %q is out of range", s)
		}
		return Duration(secs * float64(time.Second)), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration; use a value like \"30s\", \"1m30s\" or a number of seconds", truncate(s, 40))
	}
	return Duration(v), nil
}

// ByteSize is a size in bytes. JSON carries it as a string with a unit
// ("256Mi", "1Gi", "512m" as docker writes it) or as a bare number of bytes.
type ByteSize int64

// MarshalJSON writes the size in the largest binary unit that divides it.
func (b ByteSize) MarshalJSON() ([]byte, error) {
	return json.Marshal(b.String())
}

func (b ByteSize) String() string {
	v := int64(b)
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"Ti", 1 << 40}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}} {
		if v != 0 && v%u.size == 0 {
			return strconv.FormatInt(v/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(v, 10)
}

// UnmarshalJSON reads "256Mi", "512m", "1G" or a number of bytes.
func (b *ByteSize) UnmarshalJSON(data []byte) error {
	if bytes.Equal(data, []byte("null")) {
		return nil
	}
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		v, err := ParseByteSize(s)
		if err != nil {
			return err
		}
		*b = v
		return nil
	}
	var n int64
	if err := json.Unmarshal(data, &n); err != nil {
		return fmt.Errorf("a size is a string like \"256Mi\" or a whole number of bytes, got %s", truncate(string(data), 40))
	}
	*b = ByteSize(n)
	return nil
}

// ParseByteSize parses sizes such as "256Mi", "1Gi", "512m" (docker's
// lowercase units are binary too), "64k", "1e6" is not accepted.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("empty size; use a value like \"256Mi\"")
	}
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("%q is not a size; use a value like \"256Mi\", \"1Gi\" or a number of bytes", truncate(s, 40))
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q is out of range", truncate(s, 40))
	}
	unit := strings.TrimSpace(t[i:])
	var mult int64
	switch unit {
	case "", "b", "B":
		mult = 1
	case "k", "K", "Ki", "KiB", "kB", "KB":
		mult = 1 << 10
	case "m", "M", "Mi", "MiB", "MB":
		mult = 1 << 20
	case "g", "G", "Gi", "GiB", "GB":
		mult = 1 << 30
	case "t", "T", "Ti", "TiB", "TB":
		mult = 1 << 40
	default:
		return 0, fmt.Errorf("size %q has an unknown unit %q; use Ki, Mi, Gi or Ti", truncate(s, 40), truncate(unit, 10))
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q is out of range", truncate(s, 40))
	}
	return ByteSize(n * mult), nil
}

// ParseDays reads a duration that may also be a whole number of days
// ("7d"), as log and async retention are often said.
func ParseDays(s string) (Duration, error) {
	t := strings.TrimSpace(s)
	if n, ok := strings.CutSuffix(t, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 || days > 100000 {
			return 0, fmt.Errorf("%q is not a number of days; use a value like \"7d\" or \"12h\"", s)
		}
		return Duration(time.Duration(days) * 24 * time.Hour), nil
	}
	return ParseDuration(t)
}
