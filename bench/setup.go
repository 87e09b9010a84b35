package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/wisp-run/wisp/internal/runtime/docker/dockertest"
)

// Prepare is what a benchmark of the real binary on the engine does first:
// it checks the engine answers, builds the greeter image under image from
// ./testdata/greeter, makes a temporary directory named after name and
// builds ./cmd/wisp into it. It returns the directory (the caller removes
// it) and the binary's path. Run from the module root (make bench-…).
func Prepare(ctx context.Context, name, image string) (dir, bin string, err error) {
	return PrepareImage(ctx, name, "./testdata/greeter", image)
}

// PrepareImage is Prepare with the function's Go program in pkg (a path
// from the module root, such as "./testdata/recorder").
func PrepareImage(ctx context.Context, name, pkg, image string) (dir, bin string, err error) {
	if err := dockertest.Ping(ctx); err != nil {
		return "", "", fmt.Errorf("no Docker Engine: %w", err)
	}
	fmt.Printf("building %s and wisp…\n", image)
	if _, err := dockertest.BuildGoImage(ctx, pkg, image); err != nil {
		return "", "", err
	}
	if dir, err = os.MkdirTemp("", "wisp-bench-"+name+"-"); err != nil {
		return "", "", err
	}
	bin = filepath.Join(dir, "wisp")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/wisp").CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return "", "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return dir, bin, nil
}
