package krunfw

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
)

// fakeImage is a synthetic kernel image: filler, then a Xen PVH note at a
// 4-byte aligned offset, then more filler. Only the note matters to WrapPVH.
func fakeImage(t *testing.T, noteAt int, descsz uint32) ([]byte, []byte) {
	t.Helper()
	var note bytes.Buffer
	binary.Write(&note, binary.LittleEndian, []uint32{4, descsz, xenNoteType})
	note.WriteString("Xen\x00")
	desc := make([]byte, (descsz+3)&^3)
	binary.LittleEndian.PutUint32(desc, 0x1000abc)
	note.Write(desc)
	data := bytes.Repeat([]byte{0x90}, noteAt)
	// A decoy: "Xen" text that is not a note header must be skipped.
	copy(data[16:], "Xen\x00")
	data = append(data, note.Bytes()...)
	data = append(data, bytes.Repeat([]byte{0xcc}, 333)...)
	return data, note.Bytes()
}

func TestWrapPVH(t *testing.T) {
	tests := []struct {
		name   string
		noteAt int
		descsz uint32
	}{
		{"8-byte entry", 0x2000, 8},
		{"4-byte entry", 0x404, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, note := fakeImage(t, tt.noteAt, tt.descsz)
			img := Image{Data: data, Load: 0x1000000, Entry: 0x1000200}
			out, err := WrapPVH(img)
			if err != nil {
				t.Fatalf("WrapPVH() error = %v", err)
			}
			f, err := elf.NewFile(bytes.NewReader(out))
			if err != nil {
				t.Fatalf("elf.NewFile(WrapPVH()) error = %v", err)
			}
			if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 || f.Entry != img.Entry {
				t.Errorf("header = %v %v entry %#x, want ELFCLASS64 EM_X86_64 entry %#x", f.Class, f.Machine, f.Entry, img.Entry)
			}
			if len(f.Progs) != 2 {
				t.Fatalf("len(Progs) = %d, want 2", len(f.Progs))
			}
			load, pn := f.Progs[0], f.Progs[1]
			if load.Type != elf.PT_LOAD || load.Paddr != img.Load || load.Vaddr != img.Load || load.Filesz != uint64(len(data)) {
				t.Errorf("PT_LOAD = %+v, want paddr %#x filesz %d", load.ProgHeader, img.Load, len(data))
			}
			got, _ := io.ReadAll(load.Open())
			if !bytes.Equal(got, data) {
				t.Errorf("PT_LOAD content differs from the image")
			}
			if pn.Type != elf.PT_NOTE || pn.Paddr != img.Load+uint64(tt.noteAt) || pn.Align != 4 {
				t.Errorf("PT_NOTE = %+v, want paddr %#x align 4", pn.ProgHeader, img.Load+uint64(tt.noteAt))
			}
			gotNote, _ := io.ReadAll(pn.Open())
			if !bytes.Equal(gotNote, note) {
				t.Errorf("PT_NOTE content = %x, want %x", gotNote, note)
			}
		})
	}
}

func TestWrapPVHNoNote(t *testing.T) {
	_, err := WrapPVH(Image{Data: bytes.Repeat([]byte("Xen\x00"), 100), Load: 0x1000000})
	if !errors.Is(err, ErrNoPVHNote) {
		t.Errorf("WrapPVH(no note) error = %v, want %v", err, ErrNoPVHNote)
	}
}

// TestKernelELFReal wraps the real libkrunfw kernel, checks the result is an
// ELF QEMU can read, and that a second call is a cache hit.
func TestKernelELFReal(t *testing.T) {
	lib := testenv.RequireKrunfw(t)
	dir := t.TempDir()
	path, err := KernelELF(lib, dir)
	if err != nil {
		t.Fatalf("KernelELF(%q) error = %v", lib, err)
	}
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("elf.Open(%q) error = %v", path, err)
	}
	defer f.Close()
	if len(f.Progs) != 2 || f.Progs[0].Paddr != 0x1000000 {
		t.Errorf("KernelELF(%q) segments = %d, first at %#x, want 2 with PT_LOAD at 0x1000000", lib, len(f.Progs), f.Progs[0].Paddr)
	}
	st1, _ := os.Stat(path)
	again, err := KernelELF(lib, dir)
	if err != nil || again != path {
		t.Fatalf("KernelELF again = %q, %v, want %q", again, err, path)
	}
	st2, _ := os.Stat(again)
	if !st1.ModTime().Equal(st2.ModTime()) {
		t.Errorf("cache hit rewrote %s", path)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".kernel-*")); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}
	// The fast path: a link named after the library file points at the kernel.
	links, _ := filepath.Glob(filepath.Join(dir, "lib-*.kernel"))
	if len(links) != 1 {
		t.Fatalf("identity links = %v, want one", links)
	}
	// A stale link (its kernel gone) falls back to the slow path and is mended.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if again, err := KernelELF(lib, dir); err != nil || again != path {
		t.Fatalf("KernelELF after the kernel was removed = %q, %v, want %q rebuilt", again, err, path)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("kernel not rebuilt: %v", err)
	}
}

func TestKernelELFIdentityChanges(t *testing.T) {
	lib := testenv.RequireKrunfw(t)
	// A copy of the library is another file: its own link, the same kernel.
	cp := filepath.Join(t.TempDir(), filepath.Base(lib))
	data, err := os.ReadFile(lib)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	a, errA := KernelELF(lib, dir)
	b, errB := KernelELF(cp, dir)
	links, _ := filepath.Glob(filepath.Join(dir, "lib-*.kernel"))
	if errA != nil || errB != nil || a != b || len(links) != 2 {
		t.Errorf("KernelELF(lib), KernelELF(copy) = %q, %v; %q, %v; links %v: want one kernel, two links", a, errA, b, errB, links)
	}
}

func TestFindEnv(t *testing.T) {
	t.Setenv(LibraryEnv, "/nonexistent/libkrunfw.so.5")
	if _, err := Find(); err == nil {
		t.Errorf("Find() with %s=/nonexistent = nil error, want one", LibraryEnv)
	}
	lib := filepath.Join(t.TempDir(), "libkrunfw.so.5")
	os.WriteFile(lib, nil, 0o644)
	t.Setenv(LibraryEnv, lib)
	if got, err := Find(); got != lib || err != nil {
		t.Errorf("Find() = %q, %v, want %q", got, err, lib)
	}
}

// BenchmarkKernelELF measures the per-boot cost of getting the kernel when
// it is already cached (the identity link's fast path).
func BenchmarkKernelELF(b *testing.B) {
	lib := testenv.RequireKrunfw(b)
	dir := b.TempDir()
	for b.Loop() {
		if _, err := KernelELF(lib, dir); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSonameFor(t *testing.T) {
	for minor, want := range map[int]string{12: "libkrunfw.so.4", 16: "libkrunfw.so.4", 17: "libkrunfw.so.5", 19: "libkrunfw.so.5"} {
		if got := SonameFor(minor); got != want {
			t.Errorf("SonameFor(%d) = %q, want %q", minor, got, want)
		}
	}
	if _, err := Loadable("libkrunfw.so.99"); err == nil || !strings.Contains(err.Error(), "LD_LIBRARY_PATH") {
		t.Errorf("Loadable(libkrunfw.so.99) = %v, want an error saying how to fix it", err)
	}
}
