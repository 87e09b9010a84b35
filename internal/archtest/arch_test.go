package archtest

import (
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/wisp-run/wisp"

// Layers of the module, by package path relative to the module root.
var (
	features = []string{"internal/api", "internal/router", "internal/activator", "internal/autoscaler",
		"internal/reaper", "internal/build", "internal/trigger", "internal/dashboard", "internal/metrics", "internal/logs", "internal/async"}
	ports    = []string{"internal/store", "internal/runtime", "internal/queue"}
	adapters = []string{"internal/store/sqlite", "internal/store/postgres", "internal/runtime/docker",
		"internal/runtime/kube", "internal/runtime/fake", "internal/queue/nats"}
	// Conformance suites and fakes serve tests only.
	testOnly = []string{"internal/store/storetest", "internal/store/postgres/pgtest", "internal/runtime/runtimetest", "internal/runtime/fake"}
	// SDKs whose types must stay inside one adapter.
	sdks = map[string]string{
		"github.com/docker/":     "internal/runtime/docker",
		"github.com/moby/moby/":  "internal/runtime/docker",
		"github.com/containerd/": "internal/runtime/docker",
		"k8s.io/":                "internal/runtime/kube",
		// The cluster's nodes pull images: the Kubernetes runtime resolves
		// them against the registry.
		"github.com/google/go-containerregistry/": "internal/runtime/kube",
		"modernc.org/sqlite":                      "internal/store/sqlite",
		"github.com/jackc/pgx":                    "internal/store/postgres",
		"github.com/nats-io/":                     "internal/queue/nats",
		"github.com/mattn/go-sqlite":              "(nowhere: no cgo)",
	}
)

// ownSDK reports whether imp is an SDK that adapter pkg owns.
func ownSDK(pkg, imp string) bool {
	for prefix, owner := range sdks {
		if strings.HasPrefix(imp, prefix) && owner == pkg {
			return true
		}
	}
	return false
}

// within reports whether pkg is p or below p.
func within(pkg, p string) bool { return pkg == p || strings.HasPrefix(pkg, p+"/") }

func layerOf(pkg string, layer []string) (string, bool) {
	best := ""
	for _, p := range layer {
		if within(pkg, p) && len(p) > len(best) {
			best = p
		}
	}
	return best, best != ""
}

func isStd(imp string) bool {
	first := strings.SplitN(imp, "/", 2)[0]
	return !strings.Contains(first, ".")
}

// violation returns why pkg (relative path) must not import imp, or "".
func violation(pkg, imp string) string {
	if within(pkg, "bench") {
		return "" // benchmarks measure the parts against each other
	}
	if within(pkg, "test/kube") {
		return "" // the test cluster's tools (a registry, images) are not Wisp
	}
	for prefix, owner := range sdks {
		if strings.HasPrefix(imp, prefix) && !within(pkg, owner) {
			return fmt.Sprintf("only %s may import the SDK %s", owner, imp)
		}
	}
	adapter, isAdapter := layerOf(pkg, adapters)
	isAdapter = isAdapter && adapter == pkg
	if !strings.HasPrefix(imp, module+"/") {
		if within(pkg, "internal/core") && !isStd(imp) {
			return "core imports only the standard library"
		}
		if isAdapter && !isStd(imp) && !ownSDK(pkg, imp) {
			return "an adapter imports only its port, core and its own SDK"
		}
		return ""
	}
	dep := strings.TrimPrefix(imp, module+"/")
	switch {
	case within(pkg, "internal/core"):
		return "core imports only the standard library"
	case pkg == "internal/config":
		if !within(dep, "internal/core") {
			return "config imports only core"
		}
	case within(pkg, "internal/apiclient"):
		if !within(dep, "internal/core") {
			return "apiclient imports only core"
		}
	}
	if a, ok := layerOf(dep, adapters); ok && a == dep {
		if _, isTestOnly := layerOf(dep, testOnly); isTestOnly {
			return dep + " is for tests only"
		}
		if !within(pkg, "internal/daemon") {
			return "only daemon imports adapters such as " + dep
		}
	}
	if _, ok := layerOf(dep, testOnly); ok {
		return dep + " is for tests only"
	}
	if f, ok := layerOf(pkg, features); ok {
		if g, ok := layerOf(dep, features); ok && g != f {
			return "features never import each other; declare a small interface and let daemon wire " + g + " in"
		}
		for _, up := range []string{"internal/daemon", "internal/cli", "internal/apiclient", "cmd"} {
			// The dashboard is a client of the admin API like the CLI: it
			// makes every read and change through the API's own handler
			// (in-process), so validation, errors and events are the CLI's.
			if pkg == "internal/dashboard" && up == "internal/apiclient" {
				continue
			}
			if within(dep, up) {
				return "features must not import " + up
			}
		}
	}
	if p, ok := layerOf(pkg, ports); ok && p == pkg {
		if !within(dep, "internal/core") {
			return "ports import only core"
		}
	}
	if isAdapter {
		port, _ := layerOf(pkg, ports)
		if dep != port && !within(dep, "internal/core") {
			return "an adapter imports only its port (" + port + "), core and its own SDK"
		}
	}
	if within(pkg, "internal/daemon") && (within(dep, "internal/cli") || within(dep, "cmd") || within(dep, "internal/apiclient")) {
		return "daemon must not import " + dep
	}
	if within(pkg, "internal/cli") {
		// Reading wisp.yaml, planning the Dockerfile and packing the build
		// context happen where the source is: on the client.
		if within(dep, "internal/build") {
			return ""
		}
		if _, ok := layerOf(dep, features); ok {
			return "cli reaches features only through apiclient or daemon"
		}
	}
	return ""
}

type pkgInfo struct {
	imports map[string][]string // import -> files
	hasDoc  bool
	name    string
}

// scan parses the non-test Go files of the module.
func scan(t *testing.T) map[string]*pkgInfo {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found at %s: %v", root, err)
	}
	pkgs := map[string]*pkgInfo{}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		rel = filepath.ToSlash(rel)
		p := pkgs[rel]
		if p == nil {
			p = &pkgInfo{imports: map[string][]string{}, name: f.Name.Name}
			pkgs[rel] = p
		}
		if f.Doc != nil && strings.HasPrefix(f.Doc.Text(), "Package "+f.Name.Name) || f.Name.Name == "main" && f.Doc != nil {
			p.hasDoc = true
		}
		for _, imp := range f.Imports {
			v, _ := strconv.Unquote(imp.Path.Value)
			p.imports[v] = append(p.imports[v], filepath.Base(path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

func TestImportRules(t *testing.T) {
	pkgs := scan(t)
	if len(pkgs) < 8 {
		t.Fatalf("found only %d packages; is the scan looking in the right place?", len(pkgs))
	}
	var problems []string
	for pkg, info := range pkgs {
		for imp, files := range info.imports {
			if why := violation(pkg, imp); why != "" {
				problems = append(problems, fmt.Sprintf("%s (%s) imports %s: %s", pkg, strings.Join(files, ", "), imp, why))
			}
		}
	}
	sort.Strings(problems)
	for _, p := range problems {
		t.Error(p)
	}
}

func TestEveryPackageIsDocumented(t *testing.T) {
	for pkg, info := range scan(t) {
		if !info.hasDoc {
			t.Errorf("package %s (%s) has no doc comment starting \"Package %s\"", pkg, info.name, info.name)
		}
	}
}

// TestRulesCatchViolations makes sure the rules above can fail.
func TestRulesCatchViolations(t *testing.T) {
	cases := []struct {
		pkg, imp string
		bad      bool
	}{
		{"internal/core", "net/http", false},
		{"internal/core", "github.com/google/go-cmp/cmp", true},
		{"internal/core", module + "/internal/store", true},
		{"internal/api", module + "/internal/store", false},
		{"internal/api", module + "/internal/store/sqlite", true},
		{"internal/api", module + "/internal/router", true},
		{"internal/router", module + "/internal/activator", true},
		{"internal/api", module + "/internal/daemon", true},
		{"internal/daemon", module + "/internal/store/sqlite", false},
		{"internal/daemon", module + "/internal/runtime/docker", false},
		{"internal/daemon", module + "/internal/store/storetest", true},
		{"internal/daemon", module + "/internal/store/postgres", false},
		{"internal/daemon", module + "/internal/store/postgres/pgtest", true},
		{"internal/store", module + "/internal/api", true},
		{"internal/store", module + "/internal/core", false},
		{"internal/cli", module + "/internal/api", true},
		{"internal/dashboard", module + "/internal/apiclient", false},
		{"internal/dashboard", module + "/internal/api", true},
		{"internal/router", module + "/internal/apiclient", true},
		{"internal/cli", module + "/internal/daemon", false},
		{"internal/cli", module + "/internal/build", false},
		{"internal/cli", module + "/internal/router", true},
		{"internal/apiclient", module + "/internal/api", true},
		{"internal/api", "github.com/moby/moby/client", true},
		{"internal/runtime/docker", "github.com/moby/moby/client", false},
		{"internal/build", "github.com/moby/patternmatcher", false},
		{"internal/api", "github.com/containerd/errdefs", true},
		{"internal/store/sqlite", "modernc.org/sqlite", false},
		{"internal/daemon", "modernc.org/sqlite", true},
		// Adapters: their port, core and their own SDK only.
		{"internal/store/sqlite", module + "/internal/store", false},
		{"internal/store/sqlite", module + "/internal/core", false},
		{"internal/store/sqlite", module + "/internal/runtime", true},
		{"internal/store/sqlite", module + "/internal/config", true},
		{"internal/store/sqlite", "github.com/prometheus/client_golang/prometheus", true},
		{"internal/runtime/docker", module + "/internal/runtime", false},
		{"internal/runtime/docker", module + "/internal/store", true},
		{"internal/runtime/docker", "github.com/containerd/errdefs", false},
		{"internal/runtime/docker", "modernc.org/sqlite", true},
		{"internal/runtime/fake", module + "/internal/router", true},
		{"internal/store/postgres", "github.com/jackc/pgx/v5", false},
		{"internal/runtime/kube", "k8s.io/client-go/kubernetes", false},
		{"internal/runtime/kube", "github.com/moby/moby/client", true},
	}
	for _, tc := range cases {
		if got := violation(tc.pkg, tc.imp) != ""; got != tc.bad {
			t.Errorf("violation(%s, %s) = %q, want bad=%v", tc.pkg, tc.imp, violation(tc.pkg, tc.imp), tc.bad)
		}
	}
}
