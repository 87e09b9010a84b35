package cli_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/wisp-run/wisp/internal/cli"
)

func runCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Run(t.Context(), args, &out, &errb, func(k string) string { return env[k] })
	return code, out.String(), errb.String()
}

// TestVersionFlag: wisp --version prints the build, as docker and kubectl
// users expect; "wisp version" stays the versions command group.
func TestVersionFlag(t *testing.T) {
	code, out, errOut := runCLI(t, nil, "--version")
	if code != 0 || !strings.HasPrefix(out, "wisp ") || !strings.Contains(out, "go1.") {
		t.Fatalf("--version: exit %d, %q %q", code, out, errOut)
	}
	if code, out, _ := runCLI(t, nil, "version", "--help"); code != 0 || !strings.Contains(out, "immutable versions") || !strings.Contains(out, "create") {
		t.Fatalf("version --help: exit %d, %q", code, out)
	}
}

// TestServiceSetHelp: flags that only change what is given show no
// defaults.
func TestServiceSetHelp(t *testing.T) {
	_, out, _ := runCLI(t, nil, "service", "set", "--help")
	out, _, _ = strings.Cut(out, "Global Flags:")
	if strings.Contains(out, "(default") || strings.Count(out, "unchanged unless given") != 6 {
		t.Fatalf("service set --help:\n%s", out)
	}
	// create still shows them: they are what a new service gets.
	if _, out, _ := runCLI(t, nil, "service", "create", "--help"); !strings.Contains(out, `(default "5m0s")`) {
		t.Fatalf("service create --help:\n%s", out)
	}
}

// TestJSONErrors: with -o json a failure prints the API's error object on
// stdout (and the message on stderr), with the same exit codes.
func TestJSONErrors(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name string
		args []string
		code int
		want map[string]any
	}{
		{"API error", []string{"service", "get", "nope", "-o", "json"}, 1,
			map[string]any{"status": float64(404), "code": "not_found", "message": `service "nope" not found`}},
		{"API error with a field", []string{"service", "create", "Bad", "-o", "json"}, 1,
			map[string]any{"status": float64(422), "code": "invalid", "field": "name"}},
		{"usage", []string{"version", "get", "hello", "latest", "-o", "json"}, 2,
			map[string]any{"code": "usage"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := e.run(tc.args...)
			var got struct {
				Error map[string]any `json:"error"`
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil || code != tc.code {
				t.Fatalf("exit %d, stdout %q (%v), stderr %q", code, out, err, errOut)
			}
			for k, v := range tc.want {
				if got.Error[k] != v {
					t.Errorf("error.%s = %v, want %v (%v)", k, got.Error[k], v, got.Error)
				}
			}
			if got.Error["message"] == "" || !strings.Contains(errOut, "Error:") {
				t.Errorf("no message: %v, stderr %q", got.Error, errOut)
			}
		})
	}
}
