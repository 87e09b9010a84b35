package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/moby/moby/client"

	"github.com/wisp-run/wisp/internal/runtime"
)

// The sandbox image holds one program, /pause, that does nothing for ever:
// a sandbox container only has to keep its network namespace alive. The
// program is a static ELF executable of 129 bytes that Wisp writes itself
// (pauseELF), so nothing is pulled or compiled to make the image: a loop
// around the pause system call. As PID 1 of its container it ignores
// SIGTERM (the kernel delivers no signal without a handler to a namespace's
// init), so sandboxes are removed with SIGKILL, which is what a forced
// removal sends.

// pauseCode is the program, for x86-64 Linux, loaded at pauseBase+len(headers):
//
//	loop: mov eax, 34   ; b8 22 00 00 00  (SYS_pause)
//	      syscall       ; 0f 05
//	      jmp loop      ; eb f7           (back 9 bytes)
var pauseCode = []byte{0xb8, 0x22, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xeb, 0xf7}

const pauseBase = 0x400000

// pauseELF returns the executable: an ELF header, one loadable segment
// (the whole file, read and execute) and the code.
func pauseELF() []byte {
	const hdrSize, phSize = 64, 56
	size := uint64(hdrSize + phSize + len(pauseCode))
	h := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Entry: pauseBase + hdrSize + phSize, Phoff: hdrSize,
		Ehsize: hdrSize, Phentsize: phSize, Phnum: 1,
	}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	p := elf.Prog64{
		Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X),
		Vaddr: pauseBase, Paddr: pauseBase, Filesz: size, Memsz: size, Align: 0x1000,
	}
	var b bytes.Buffer
	_ = binary.Write(&b, binary.LittleEndian, h) // writes to a buffer do not fail
	_ = binary.Write(&b, binary.LittleEndian, p)
	b.Write(pauseCode)
	return b.Bytes()
}

// labelSandboxImage marks the sandbox image with the digest of its program,
// so an image of the same tag made from another program is replaced.
const labelSandboxImage = "wisp.sandbox-image"

// ensureSandboxImage imports the sandbox image unless it is there, and
// returns its ID. The engine must run x86-64 programs.
func (d *Docker) ensureSandboxImage(ctx context.Context, arch string) (string, error) {
	if arch != "x86_64" && arch != "amd64" {
		return "", fmt.Errorf("the sandbox program is built for x86-64 and the engine runs on %s", arch)
	}
	prog := pauseELF()
	sum := sha256.Sum256(prog)
	digest := hex.EncodeToString(sum[:6])
	tag := "wisp-sandbox:" + digest
	if img, err := d.cli.ImageInspect(ctx, tag); err == nil && img.Config != nil && img.Config.Labels[labelSandboxImage] == digest {
		return img.ID, nil
	}
	var rootfs bytes.Buffer
	tw := tar.NewWriter(&rootfs)
	_ = tw.WriteHeader(&tar.Header{Name: "pause", Mode: 0o555, Size: int64(len(prog)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg})
	_, _ = tw.Write(prog)
	_ = tw.Close()
	changes := []string{`ENTRYPOINT ["/pause"]`, "LABEL " + labelSandboxImage + "=" + digest, "LABEL " + runtime.LabelManaged + "=true"}
	res, err := d.cli.ImageImport(ctx, client.ImageImportSource{Source: &rootfs, SourceName: "-"}, tag, client.ImageImportOptions{Changes: changes})
	if err != nil {
		return "", fmt.Errorf("import the sandbox image %s: %w", tag, err)
	}
	out, err := io.ReadAll(res)
	_ = res.Close()
	if err != nil {
		return "", fmt.Errorf("import the sandbox image %s: %w", tag, err)
	}
	if strings.Contains(string(out), `"error"`) {
		return "", fmt.Errorf("import the sandbox image %s: %s", tag, out)
	}
	img, err := d.cli.ImageInspect(ctx, tag)
	if err != nil {
		return "", fmt.Errorf("import the sandbox image %s: %w", tag, err)
	}
	d.log.Info("imported the sandbox image", "image", tag, "bytes", len(prog))
	return img.ID, nil
}
