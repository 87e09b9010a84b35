package daemon

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestAlertRules runs promtool's tests of deploy/prometheus/alerts.yml
// (each rule fires on one series and not on another) and checks that every
// series the rules name is one Wisp's code exports.
func TestAlertRules(t *testing.T) {
	rules := filepath.Join("..", "..", "deploy", "prometheus", "alerts.yml")
	body, err := os.ReadFile(rules)
	if err != nil {
		t.Fatal(err)
	}
	src := exportedSource(t, filepath.Join("..", ".."))
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`\bwisp_[a-z_]+`).FindAllString(string(body), -1) {
		names[strings.TrimSuffix(m, "_bucket")] = true
	}
	if len(names) < 5 {
		t.Fatalf("the rules name %d Wisp series: %v", len(names), names)
	}
	for n := range names {
		if !strings.Contains(src, `"`+n+`"`) {
			t.Errorf("the rules use %s, which no Wisp code exports", n)
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not found (apt-get install prometheus): the rules' own tests did not run")
	}
	out, err := exec.CommandContext(t.Context(), promtool, "test", "rules", filepath.Join(filepath.Dir(rules), "alerts_test.yml")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

// exportedSource is the text of every non-test Go file under internal/.
func exportedSource(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(filepath.Join(root, "internal"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		data, err := os.ReadFile(p) //nolint:gosec // G304: the repository's own sources
		b.Write(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
