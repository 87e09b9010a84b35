package core

import "testing"

// TestShiftKeepsMirror: a shift keeps the mirror unless it gives the
// mirror's version everything; MirrorFor says the same for any split.
func TestShiftKeepsMirror(t *testing.T) {
	m := &Mirror{Version: 2, Percent: 10}
	from := Traffic{Weights: []Weight{{Version: 1, Percent: 100}}, Mirror: m}
	cases := []struct {
		name            string
		number, percent int
		keep            bool
	}{
		{"canary of the mirror's version", 2, 10, true},
		{"another version to 100%", 3, 100, true},
		{"the mirror's version to 100%", 2, 100, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := from.Shift(tc.number, tc.percent, "msg")
			if (got.Mirror != nil) != tc.keep {
				t.Fatalf("mirror after the shift: %v, want kept %t", got.Mirror, tc.keep)
			}
			if (got.MirrorFor(m) != nil) != tc.keep {
				t.Fatalf("MirrorFor: %v, want kept %t", got.MirrorFor(m), tc.keep)
			}
		})
	}
}
