package build

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/wisp-run/wisp/internal/core"
)

// Spec is a directory's wisp.yaml. Every field is optional.
type Spec struct {
	Service        string   `yaml:"service"`
	Runtime        string   `yaml:"runtime"`
	Port           int      `yaml:"port"`
	Env            []string `yaml:"env"`
	Command        []string `yaml:"command"`
	Args           []string `yaml:"args"`
	Memory         string   `yaml:"memory"`
	CPU            float64  `yaml:"cpu"`
	MaxConcurrency int      `yaml:"max_concurrency"`
	Timeout        string   `yaml:"timeout"`
	ReadinessPath  string   `yaml:"readiness_path"`
	// Policy is the policy patch of the scaling, logs and async sections
	// together, applied to the service when the build succeeds.
	Policy      *core.PolicyPatch `yaml:"-"`
	ScalingYAML *ScalingSpec      `yaml:"scaling"`
	LogsYAML    *LogsSpec         `yaml:"logs"`
	AsyncYAML   *AsyncSpec        `yaml:"async"`
	Build       BuildSpec         `yaml:"build"`
}

// LogsSpec is the logs section of wisp.yaml: the service's log policy.
type LogsSpec struct {
	RequestLogs *bool  `yaml:"request_logs"`
	MaxBytes    string `yaml:"max_bytes"` // a size, "50MiB"
	MaxAge      string `yaml:"max_age"`   // a duration, "7d"
}

// AsyncSpec is the async section of wisp.yaml: how the service's async
// calls are dispatched and retried.
type AsyncSpec struct {
	Concurrency *int   `yaml:"concurrency"`
	MaxAttempts *int   `yaml:"max_attempts"`
	MinBackoff  string `yaml:"min_backoff"`
	MaxBackoff  string `yaml:"max_backoff"`
	MaxAge      string `yaml:"max_age"`
}

// ScalingSpec is the scaling section of wisp.yaml.
type ScalingSpec struct {
	MinInstances      *int   `yaml:"min_instances"`
	MaxInstances      *int   `yaml:"max_instances"`
	Standby           *int   `yaml:"standby"`
	TargetConcurrency *int   `yaml:"target_concurrency"`
	TargetRPS         *int   `yaml:"target_rps"`
	IdleTimeout       string `yaml:"idle_timeout"`
	PauseAfter        string `yaml:"pause_after"`
	// MinInstancesSchedule holds windows in the CLI's syntax,
	// "mon-fri 08:00-18:00 Europe/Paris=2" (core.ParseMinWindow).
	MinInstancesSchedule []string `yaml:"min_instances_schedule"`
	KeepPrevious         string   `yaml:"keep_previous"`
	Singleton            *bool    `yaml:"singleton"`
}

// BuildSpec is the build section of wisp.yaml.
type BuildSpec struct {
	// BaseImage replaces the pack's runtime base image.
	BaseImage string `yaml:"base_image"`
	// BuilderImage replaces the pack's build-stage image (go).
	BuilderImage string `yaml:"builder_image"`
	// Dockerfile names the Dockerfile of the dockerfile runtime.
	Dockerfile string `yaml:"dockerfile"`
}

// SpecFile is the name of the spec in a source directory.
const SpecFile = "wisp.yaml"

// Runtimes lists the runtimes (packs), in the order they are detected.
var Runtimes = []string{"dockerfile", "go", "node", "python", "stdio"}

// ParseSpec reads wisp.yaml strictly and checks its values.
func ParseSpec(data []byte) (Spec, error) {
	var s Spec
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil && !errors.Is(err, io.EOF) { // an empty file is an empty spec
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return Spec{}, fmt.Errorf("%s: %s", SpecFile, strings.Join(nameKeys(data, te.Errors), "; "))
		}
		return Spec{}, fmt.Errorf("%s: %s", SpecFile, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return s, s.validate()
}

var (
	lineRE      = regexp.MustCompile(`^line (\d+): (.*)$`)
	unmarshalRE = regexp.MustCompile("^cannot unmarshal !!(\\w+)(?: `(.*)`)? into (.+)$")
	unknownRE   = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)
)

// nameKeys says each of yaml's errors in wisp.yaml's terms: yaml's messages
// name only the line, and Go's types ("cannot unmarshal !!str `x` into
// int", "field foo not found in type build.Spec").
func nameKeys(data []byte, errs []string) []string {
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root) // it decoded once already
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = e
		m := lineRE.FindStringSubmatch(e)
		if m == nil {
			continue
		}
		line, _ := strconv.Atoi(m[1])
		msg := m[2]
		if u := unknownRE.FindStringSubmatch(msg); u != nil {
			out[i] = fmt.Sprintf("line %d: unknown key %q; the keys %s are %s", line, u[1], sectionOf(u[2]), strings.Join(yamlKeys[u[2]], ", "))
			continue
		}
		if u := unmarshalRE.FindStringSubmatch(msg); u != nil {
			got := fmt.Sprintf("%q", u[2])
			switch u[1] {
			case "seq":
				got = "a list"
			case "map":
				got = "a mapping"
			}
			msg = fmt.Sprintf("must be %s, got %s", kindOf(u[3]), got)
		}
		if key := keyAtLine(&root, line, ""); key != "" {
			out[i] = fmt.Sprintf("line %d: %s: %s", line, key, msg)
		} else {
			out[i] = fmt.Sprintf("line %d: %s", line, msg)
		}
	}
	return out
}

// yamlKeys lists the keys of each section of wisp.yaml, by the Go type
// that yaml names in its errors.
var yamlKeys = map[string][]string{
	"build.Spec":        keysOf(Spec{}),
	"build.BuildSpec":   keysOf(BuildSpec{}),
	"build.ScalingSpec": keysOf(ScalingSpec{}),
	"build.LogsSpec":    keysOf(LogsSpec{}),
	"build.AsyncSpec":   keysOf(AsyncSpec{}),
}

func keysOf(v any) []string {
	t := reflect.TypeOf(v)
	var keys []string
	for i := range t.NumField() {
		if k, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); k != "" && k != "-" {
			keys = append(keys, k)
		}
	}
	return keys
}

func sectionOf(goType string) string {
	switch goType {
	case "build.BuildSpec":
		return "under build:"
	case "build.ScalingSpec":
		return "under scaling:"
	case "build.LogsSpec":
		return "under logs:"
	case "build.AsyncSpec":
		return "under async:"
	}
	return "of " + SpecFile
}

// kindOf names what a Go type takes, in YAML's words.
func kindOf(goType string) string {
	switch goType {
	case "int", "int64":
		return "a whole number"
	case "float64":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "[]string":
		return "a list of strings, such as [a, b]"
	}
	if strings.HasPrefix(goType, "build.") {
		return "a mapping of keys"
	}
	return goType
}

// keyAtLine returns the dotted key whose value starts at line.
func keyAtLine(n *yaml.Node, line int, prefix string) string {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			if k := keyAtLine(c, line, prefix); k != "" {
				return k
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i].Value, n.Content[i+1]
			if prefix != "" {
				key = prefix + "." + key
			}
			if k := keyAtLine(val, line, key); k != "" {
				return k // the deepest key on the line
			}
			if val.Line == line {
				return key
			}
		}
	}
	return ""
}

func (s *Spec) validate() error {
	if s.Service != "" {
		if err := core.ValidateServiceName(s.Service); err != nil {
			return fmt.Errorf("%s: service: %w", SpecFile, err)
		}
	}
	if s.Runtime != "" && !contains(Runtimes, s.Runtime) {
		return fmt.Errorf("%s: runtime %q is not one of %s", SpecFile, s.Runtime, strings.Join(Runtimes, ", "))
	}
	if d := s.Build.Dockerfile; d != "" && !filepath.IsLocal(d) {
		return fmt.Errorf("%s: build.dockerfile %q must be a path inside the source directory", SpecFile, d)
	}
	if s.Runtime == "stdio" && len(s.Command) == 0 {
		return fmt.Errorf("%s: the stdio runtime needs command: the function to run for each request, for example [\"python3\", \"handler.py\"]", SpecFile)
	}
	if s.Memory != "" {
		if _, err := core.ParseByteSize(s.Memory); err != nil {
			return fmt.Errorf("%s: memory: %w", SpecFile, err)
		}
	}
	if s.Timeout != "" {
		d, err := core.ParseDuration(s.Timeout)
		if err != nil {
			return fmt.Errorf("%s: timeout: %w", SpecFile, err)
		}
		if d == 0 {
			return fmt.Errorf("%s: timeout must be between 1s and 1h, got %q; leave it out for the default of %s", SpecFile, s.Timeout, core.DefaultTimeout)
		}
	}
	if err := core.ValidateEnv("env", s.Env); err != nil {
		return fmt.Errorf("%s: %w", SpecFile, err)
	}
	return s.policy()
}

// policy turns the scaling, logs and async sections into one policy patch
// (Policy), checked as the API would check it.
func (s *Spec) policy() error {
	sc, lg, as := s.ScalingYAML, s.LogsYAML, s.AsyncYAML
	if sc == nil && lg == nil && as == nil {
		return nil
	}
	var p core.PolicyPatch
	type duration struct {
		key, val string
		dst      **core.Duration
		days     bool // "7d" is accepted, as the CLI takes it
	}
	var durations []duration
	if sc != nil {
		p.MinInstances, p.MaxInstances, p.Standby = sc.MinInstances, sc.MaxInstances, sc.Standby
		p.TargetConcurrency, p.TargetRPS, p.Singleton = sc.TargetConcurrency, sc.TargetRPS, sc.Singleton
		if sc.MinInstancesSchedule != nil {
			windows := []core.MinWindow{}
			for _, w := range sc.MinInstancesSchedule {
				win, err := core.ParseMinWindow(w)
				if err != nil {
					return fmt.Errorf("%s: scaling.min_instances_schedule: %w", SpecFile, err)
				}
				windows = append(windows, win)
			}
			p.MinInstancesSchedule = &windows
		}
		durations = append(durations, duration{"scaling.idle_timeout", sc.IdleTimeout, &p.IdleTimeout, false},
			duration{"scaling.pause_after", sc.PauseAfter, &p.PauseAfter, false}, duration{"scaling.keep_previous", sc.KeepPrevious, &p.KeepPrevious, false})
	}
	if lg != nil {
		p.RequestLogs = lg.RequestLogs
		if lg.MaxBytes != "" {
			n, err := core.ParseByteSize(lg.MaxBytes)
			if err != nil {
				return fmt.Errorf("%s: logs.max_bytes: %w", SpecFile, err)
			}
			v := int64(n)
			p.LogMaxBytes = &v
		}
		durations = append(durations, duration{"logs.max_age", lg.MaxAge, &p.LogMaxAge, true})
	}
	if as != nil {
		p.AsyncConcurrency, p.MaxAttempts = as.Concurrency, as.MaxAttempts
		durations = append(durations, duration{"async.min_backoff", as.MinBackoff, &p.MinBackoff, false},
			duration{"async.max_backoff", as.MaxBackoff, &p.MaxBackoff, false}, duration{"async.max_age", as.MaxAge, &p.MaxAge, true})
	}
	for _, d := range durations {
		if d.val == "" {
			continue
		}
		parse := core.ParseDuration
		if d.days {
			parse = core.ParseDays
		}
		v, err := parse(d.val)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", SpecFile, d.key, err)
		}
		*d.dst = &v
	}
	if err := p.Apply(core.DefaultPolicy()).Validate(); err != nil {
		return fmt.Errorf("%s: %s: %w", SpecFile, specKey(err), err)
	}
	s.Policy = &p
	return nil
}

// specKey names where in wisp.yaml a policy error's field is set: a key of
// the logs or async section, else the scaling section.
func specKey(err error) string {
	var ce *core.Error
	if !errors.As(err, &ce) {
		return "scaling"
	}
	switch f := strings.TrimPrefix(ce.Field, "policy."); f {
	case "request_logs":
		return "logs.request_logs"
	case "log_max_bytes", "log_max_age":
		return "logs." + strings.TrimPrefix(f, "log_")
	case "async_concurrency":
		return "async.concurrency"
	case "max_attempts", "min_backoff", "max_backoff", "max_age":
		return "async." + f
	}
	return "scaling"
}

// LoadSpec reads dir/wisp.yaml; a missing file is an empty spec.
func LoadSpec(dir string) (Spec, error) {
	data, err := os.ReadFile(filepath.Join(dir, SpecFile)) //nolint:gosec // G304: the user's own source directory
	if errors.Is(err, fs.ErrNotExist) {
		return Spec{}, nil
	}
	if err != nil {
		return Spec{}, err
	}
	return ParseSpec(data)
}

// Detect names the runtime of the source in dir from its files: a
// Dockerfile, go.mod, package.json, requirements.txt or a .py file.
func Detect(dir string) (string, error) {
	exists := func(name string) bool {
		_, err := os.Stat(filepath.Join(dir, name))
		return err == nil
	}
	switch {
	case exists("Dockerfile"):
		return "dockerfile", nil
	case exists("go.mod"):
		return "go", nil
	case exists("package.json"):
		return "node", nil
	case exists("requirements.txt"):
		return "python", nil
	}
	if py, _ := filepath.Glob(filepath.Join(dir, "*.py")); len(py) > 0 {
		return "python", nil
	}
	return "", fmt.Errorf("no runtime recognised in %s: add a Dockerfile, go.mod, package.json, requirements.txt or a .py file, "+
		"or name one in %s (runtime: %s)", dir, SpecFile, strings.Join(Runtimes, " | "))
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
