package docker

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime"
)

var _ runtime.Builder = (*Builder)(nil)

// Builder builds images with the Docker Engine's build API. It is its own
// dependency, not an ability of the runtime: the daemon chooses a builder
// (--builder) as it chooses a runtime, and a cluster runtime can build with
// a Docker Engine too.
type Builder struct {
	cli *client.Client
}

// Builder returns a builder on the same engine connection.
func (d *Docker) Builder() *Builder { return &Builder{cli: d.cli} }

// OpenBuilder connects to the Docker Engine for builds alone, as a cluster
// runtime's builder (the images then go to a registry). Close releases it.
func OpenBuilder(ctx context.Context) (*Builder, error) {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("docker: %w", err)
	}
	if _, err := cli.Ping(ctx, client.PingOptions{}); err != nil {
		_ = cli.Close()
		return nil, core.Unavailablef("cannot reach the Docker Engine at %s to build images: %v (is dockerd running? or use --builder none)", cli.DaemonHost(), err)
	}
	return &Builder{cli: cli}, nil
}

// Close releases the connection of a builder from OpenBuilder.
func (d *Builder) Close() error { return d.cli.Close() }

// ansiRE matches the colour codes the engine puts around a step's stderr.
var ansiRE = regexp.MustCompile("\x1b\\[[0-9;]*m")

// buildMessage is one line of the engine's build stream.
type buildMessage struct {
	Stream string `json:"stream"`
	Error  string `json:"error"`
	Aux    *struct {
		ID string `json:"ID"`
	} `json:"aux"`
}

// tailLines keeps the last n lines of output for error messages.
type tailLines struct {
	n     int
	lines []string
}

func (t *tailLines) add(l string) {
	t.lines = append(t.lines, l)
	if len(t.lines) > t.n {
		t.lines = t.lines[1:]
	}
}

// Build implements runtime.Builder with the engine's build API (the
// classic builder, which needs no BuildKit session and pulls nothing that
// is already on the machine).
func (d *Builder) Build(ctx context.Context, req runtime.BuildRequest, progress func(line string)) (string, error) {
	res, err := d.cli.ImageBuild(ctx, req.Context, client.ImageBuildOptions{
		Tags: req.Tags, Dockerfile: req.Dockerfile, Labels: req.Labels,
		Remove: true, ForceRemove: true, Version: build.BuilderV1,
	})
	if cerrdefs.IsInvalidArgument(err) {
		return "", core.Invalidf("build", "the build was refused: %v", err)
	}
	if err != nil {
		return "", fmt.Errorf("docker: build: %w", err)
	}
	defer res.Body.Close()
	tail := &tailLines{n: 20}
	id := ""
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var m buildMessage
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		if m.Aux != nil && m.Aux.ID != "" {
			id = m.Aux.ID
		}
		for _, l := range strings.Split(strings.TrimRight(ansiRE.ReplaceAllString(m.Stream, ""), "\n"), "\n") {
			if l == "" {
				continue
			}
			tail.add(l)
			if progress != nil {
				progress(l)
			}
		}
		if m.Error != "" {
			if image, ok := fromStep(tail.lines); ok {
				return "", core.Invalidf("build", "the build could not get the base image %s: %s\n"+
					"If this machine cannot reach a registry, build FROM an image that is on it: "+
					"wisp deploy --base-image IMAGE (and --builder-image IMAGE for the go pack's build stage), "+
					"or build.base_image and build.builder_image in wisp.yaml (see docker images)", image, strings.TrimSpace(m.Error))
			}
			return "", core.Invalidf("build", "the build failed: %s\nits last output:\n%s", strings.TrimSpace(m.Error), strings.Join(tail.lines, "\n"))
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("docker: build output: %w", err)
	}
	if id == "" && len(req.Tags) > 0 {
		img, err := d.cli.ImageInspect(ctx, req.Tags[0])
		if err != nil {
			return "", fmt.Errorf("docker: inspect the built image: %w", err)
		}
		id = img.ID
	}
	if id == "" {
		return "", fmt.Errorf("docker: the build reported no image")
	}
	return id, nil
}

// fromRE matches the classic builder's line for a FROM step.
var fromRE = regexp.MustCompile(`^Step \d+/\d+ : FROM\s+(?:--platform=\S+\s+)?(\S+)`)

// fromStep reports the image of a FROM step when it is the last line of
// output: an error right after it is the engine failing to get that image
// (from a registry, when it is not on the machine).
func fromStep(lines []string) (string, bool) {
	if len(lines) == 0 {
		return "", false
	}
	m := fromRE.FindStringSubmatch(lines[len(lines)-1])
	if m == nil {
		return "", false
	}
	return m[1], true
}

// FindImage implements runtime.Builder.
func (d *Builder) FindImage(ctx context.Context, labels map[string]string) (string, bool, error) {
	f := client.Filters{}
	for k, v := range labels {
		f = f.Add("label", k+"="+v)
	}
	res, err := d.cli.ImageList(ctx, client.ImageListOptions{Filters: f})
	if err != nil {
		return "", false, fmt.Errorf("docker: list images: %w", err)
	}
	if len(res.Items) == 0 {
		return "", false, nil
	}
	return res.Items[0].ID, true, nil
}

// InspectImage implements runtime.Builder.
func (d *Builder) InspectImage(ctx context.Context, ref string) (runtime.ImageInfo, error) {
	img, err := d.cli.ImageInspect(ctx, ref)
	if cerrdefs.IsNotFound(err) {
		return runtime.ImageInfo{}, core.NotFoundf("image %q is not on this machine", ref)
	}
	if err != nil {
		return runtime.ImageInfo{}, fmt.Errorf("docker: inspect image %s: %w", ref, err)
	}
	info := runtime.ImageInfo{ID: img.ID}
	if img.Config != nil {
		info.Labels = img.Config.Labels
	}
	return info, nil
}

// TagImage implements runtime.Builder.
func (d *Builder) TagImage(ctx context.Context, id, ref string) error {
	if _, err := d.cli.ImageTag(ctx, client.ImageTagOptions{Source: id, Target: ref}); err != nil {
		return fmt.Errorf("docker: tag %s as %s: %w", id, ref, err)
	}
	return nil
}
