package readme_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/config"
	"github.com/wisp-run/wisp/internal/daemon"
	"github.com/wisp-run/wisp/internal/runtime/docker/dockertest"
)

// walkthrough is the commands of the blocks marked with one name, in order.
type walkthrough struct {
	name     string
	commands []string
}

var markerRE = regexp.MustCompile(`^<!--\s*walkthrough:\s*([a-z0-9-]+)\s*-->$`)

// parseWalkthroughs reads the marked shell blocks of a Markdown file. In a
// block with prompts ("$ cmd"), the prompted lines are the commands and the
// others their output; in a block without, every line is a command, and a
// line ending in "\" goes on on the next.
func parseWalkthroughs(r io.Reader) ([]walkthrough, error) {
	var out []walkthrough
	index := map[string]int{}
	sc := bufio.NewScanner(r)
	marked, inBlock := "", false
	var block []string
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case !inBlock && markerRE.MatchString(strings.TrimSpace(line)):
			marked = markerRE.FindStringSubmatch(strings.TrimSpace(line))[1]
		case !inBlock && marked != "" && strings.HasPrefix(line, "```"):
			inBlock, block = true, nil
		case !inBlock && marked != "" && strings.TrimSpace(line) != "":
			return nil, fmt.Errorf("line %d: the walkthrough marker must come right before a ``` block", n)
		case inBlock && strings.HasPrefix(line, "```"):
			i, ok := index[marked]
			if !ok {
				i = len(out)
				index[marked] = i
				out = append(out, walkthrough{name: marked})
			}
			out[i].commands = append(out[i].commands, commandsOf(block)...)
			inBlock, marked = false, ""
		case inBlock:
			block = append(block, line)
		}
	}
	return out, sc.Err()
}

func commandsOf(block []string) []string {
	prompted := false
	for _, l := range block {
		if strings.HasPrefix(l, "$ ") {
			prompted = true
		}
	}
	var cmds []string
	for i := 0; i < len(block); i++ {
		l := block[i]
		if prompted {
			if c, ok := strings.CutPrefix(l, "$ "); ok {
				cmds = append(cmds, c)
			}
			continue
		}
		if strings.TrimSpace(l) == "" || strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		for strings.HasSuffix(l, "\\") && i+1 < len(block) {
			i++
			l = strings.TrimSuffix(l, "\\") + " " + strings.TrimSpace(block[i])
		}
		cmds = append(cmds, l)
	}
	return cmds
}

func TestParseWalkthroughs(t *testing.T) {
	md := "intro\n<!-- walkthrough: a -->\n```sh\n$ echo one\none\n\n$ echo two   # a comment\n```\n" +
		"```sh\n$ not marked\n```\n<!-- walkthrough: b -->\n```sh\nX=1\ncurl -d x \\\n     -H y\n# note\n```\n" +
		"<!-- walkthrough: a -->\n```sh\n$ echo three\n```\n"
	got, err := parseWalkthroughs(strings.NewReader(md))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprint([]walkthrough{{"a", []string{"echo one", "echo two   # a comment", "echo three"}}, {"b", []string{"X=1", "curl -d x  -H y"}}})
	if fmt.Sprint(got) != want {
		t.Fatalf("got %v, want %s", got, want)
	}
	if _, err := parseWalkthroughs(strings.NewReader("<!-- walkthrough: a -->\ntext\n```sh\nx\n```\n")); err == nil {
		t.Fatal("a marker that is not right before a block must be an error")
	}
}

// TestREADMEWalkthroughs runs the README's walkthroughs as written, step by
// step, against a fresh daemon on free ports. What the test changes, so as
// to touch nothing of the machine's: the addresses (localhost:8081 and
// :8080) become the test daemon's, wisp-data/ its data directory, bin/wisp
// a binary built from this checkout, and the images hello:1 and hello:2
// are tagged wisp-readme-hello:1 and :2. curl runs with --fail-with-body,
// so an HTTP error fails its step, as a person would notice it.
func TestREADMEWalkthroughs(t *testing.T) {
	dockertest.Skip(t)
	for _, tool := range []string{"bash", "curl", "jq", "docker"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the README's walkthroughs use %s: %v (.ci/run installs it)", tool, err)
		}
	}
	root, err := dockertest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	walks, err := parseWalkthroughs(f)
	_ = f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(walks) != 2 || walks[0].name != "cli" || walks[1].name != "api" {
		t.Fatalf("the README marks walkthroughs %v, want cli then api", walks)
	}

	start := time.Now()
	bin := filepath.Join(t.TempDir(), "wisp")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "./cmd/wisp")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	images := []string{"wisp-readme-hello:1", "wisp-readme-hello:2"}
	t.Cleanup(func() {
		for _, img := range images {
			_ = dockertest.RemoveImage(context.WithoutCancel(t.Context()), img)
		}
	})
	d := startDaemon(t)
	admin, router := d.AdminAddr().String(), d.RouterAddr().String()
	_, routerPort, _ := net.SplitHostPort(router)
	rewrite := strings.NewReplacer(
		"bin/wisp", bin,
		"localhost:8081", admin,
		"localhost:8080", "localhost:"+routerPort,
		"wisp-data/", d.dataDir+"/",
		"hello:1", images[0],
		"hello:2", images[1],
		`"image_name":"hello"`, `"image_name":"wisp-readme-hello"`,
	)
	env := append(os.Environ(), "WISP_SERVER=http://"+admin, "WISP_DATA_DIR="+d.dataDir, "WISP_TOKEN=")
	outputs := map[string]string{}
	for _, w := range walks {
		var script strings.Builder
		script.WriteString("set -eo pipefail\ncurl() { command curl --fail-with-body \"$@\"; }\n")
		for i, c := range w.commands {
			fmt.Fprintf(&script, "printf '\\n::step %d\\n'\n%s\n", i+1, rewrite.Replace(c))
		}
		script.WriteString("printf '\\n::done\\n'\n")
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		cmd := exec.CommandContext(ctx, "bash", "-c", script.String())
		cmd.Dir, cmd.Env = root, env
		out, err := cmd.CombinedOutput()
		cancel()
		outputs[w.name] = string(out)
		if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), "::done") {
			step := "?"
			if i := strings.LastIndex(string(out), "::step "); i >= 0 {
				step = strings.Fields(string(out)[i+len("::step "):])[0]
			}
			t.Fatalf("walkthrough %s failed at step %s: %v\noutput:\n%s", w.name, step, err, out)
		}
		t.Logf("walkthrough %s: %d steps passed", w.name, len(w.commands))
	}
	// The router served what the walkthroughs deployed.
	if !strings.Contains(outputs["cli"], "Hello, Go!") || !strings.Contains(outputs["cli"], "Hello, Docker!") {
		t.Errorf("the CLI walkthrough's calls through the router did not answer as the README shows:\n%s", outputs["cli"])
	}
	if !strings.Contains(outputs["api"], "Hello, canary!") {
		t.Errorf("the API walkthrough's call of the canary did not answer:\n%s", outputs["api"])
	}
	t.Logf("both walkthroughs in %s", time.Since(start).Round(100*time.Millisecond))
}

type testDaemon struct {
	*daemon.Daemon
	dataDir string
}

// startDaemon runs a daemon on the real engine on free ports until the test
// ends; stopping it removes its instances.
func startDaemon(t *testing.T) testDaemon {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.AdminAddr, cfg.Addr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.DockerNetwork = "wisp-test"
	cfg.StopGrace = 2 * time.Second
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	lh := slog.Handler(slog.DiscardHandler)
	if os.Getenv("WISP_TEST_LOG") != "" {
		lh = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})
	}
	d, err := daemon.Open(ctx, cfg, slog.New(lh), daemon.Options{Out: io.Discard})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("daemon Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("the daemon did not stop within 30s")
		}
	})
	return testDaemon{Daemon: d, dataDir: cfg.DataDir}
}
