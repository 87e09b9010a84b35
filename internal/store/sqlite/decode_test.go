package sqlite

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wisp-run/wisp/internal/core"
)

// The fast decoders must agree with encoding/json on everything it accepts
// (and fail where it fails).

var listInputs = []string{
	`[]`, `[""]`, `["A=1"]`, `["A=1","B=2,3"]`, `["A=\"q\""]`, `["a\\b"]`, `["\u003chtml\u003e"]`, `["é","ü"]`,
	`["a", "b"]`, `[ "a" ]`, `["a","b"`, `["a"x]`, `null`, `["a","",""]`, `["a\",\"b"]`, "[\"tab\there\"]",
}

var weightInputs = []string{
	`[]`, `[{"version":1,"percent":100}]`, `[{"version":1,"percent":90},{"version":12,"percent":10}]`,
	`[{"percent":100,"version":1}]`, `[{"version":1, "percent":100}]`, `[{"version":01,"percent":100}]`,
	`[{"version":-1,"percent":100}]`, `[{"version":1,"percent":100},]`, `[{"version":1,"percent":100}`,
	`null`, `[{"version":1e2,"percent":0}]`, `[{"version":1,"percent":100}]x`, `[{"version":9999999999,"percent":1}]`,
}

func FuzzDecodeList(f *testing.F) {
	for _, in := range listInputs {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var want []string
		wantErr := json.Unmarshal([]byte(in), &want)
		got, err := decodeList(in, []string{})
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("decodeList(%q) error %v, encoding/json's %v", in, err, wantErr)
		}
		if err == nil && len(want) > 0 {
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("decodeList(%q) (-encoding/json +fast):\n%s", in, diff)
			}
		}
		if err == nil && len(want) == 0 && (got == nil || len(got) != 0) {
			t.Fatalf("decodeList(%q) = %#v, want the empty list given", in, got)
		}
	})
}

func FuzzDecodeWeights(f *testing.F) {
	for _, in := range weightInputs {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var want []core.Weight
		wantErr := json.Unmarshal([]byte(in), &want)
		got, err := decodeWeights(in)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("decodeWeights(%q) error %v, encoding/json's %v", in, err, wantErr)
		}
		if err == nil {
			if want == nil {
				want = []core.Weight{}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("decodeWeights(%q) (-encoding/json +fast):\n%s", in, diff)
			}
		}
	})
}

// TestFastPathsTaken: what json.Marshal writes takes the fast paths (else
// they would not earn their keep).
func TestFastPathsTaken(t *testing.T) {
	env, _ := json.Marshal([]string{"GREETING=Go", "PATH=/bin:/usr/bin", "CSV=a,b"})
	if _, ok := splitList(string(env)); !ok {
		t.Errorf("splitList(%s) fell back to encoding/json", env)
	}
	w, _ := json.Marshal([]core.Weight{{Version: 1, Percent: 90}, {Version: 20, Percent: 10}})
	if _, ok := parseWeights(string(w)); !ok {
		t.Errorf("parseWeights(%s) fell back to encoding/json", w)
	}
}
