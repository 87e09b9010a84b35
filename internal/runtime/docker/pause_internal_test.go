package docker

import (
	"bytes"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"testing"
	"time"
)

// TestPauseProgram: the sandbox program is a well-formed static x86-64
// executable that, run, waits until it is killed.
func TestPauseProgram(t *testing.T) {
	prog := pauseELF()
	if len(prog) != 129 {
		t.Errorf("the program is %d bytes, want 129 (headers and code)", len(prog))
	}
	f, err := elf.NewFile(bytes.NewReader(prog))
	if err != nil {
		t.Fatal(err)
	}
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC || len(f.Progs) != 1 || f.Progs[0].Type != elf.PT_LOAD {
		t.Fatalf("header: %+v, segments %d", f.FileHeader, len(f.Progs))
	}
	if _, err := f.DynamicSymbols(); err == nil {
		t.Error("the program is dynamically linked")
	}
	if goruntime.GOOS != "linux" || goruntime.GOARCH != "amd64" {
		t.Logf("not run: this machine is %s/%s", goruntime.GOOS, goruntime.GOARCH)
		return
	}
	path := filepath.Join(t.TempDir(), "pause")
	if err := os.WriteFile(path, prog, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		t.Fatalf("the program ended on its own: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != -1 {
			t.Fatalf("after SIGKILL: %v, want killed by the signal", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the program outlived SIGKILL")
	}
}
