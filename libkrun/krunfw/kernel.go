package krunfw

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"github.com/ebitengine/purego"
	"github.com/loftd/loftd/internal/atomicfile"
	"golang.org/x/sys/unix"
)

// Image is the flat kernel image libkrunfw embeds: Data is loaded at guest
// physical address Load, and Entry is the 64-bit entry libkrun jumps to.
type Image struct {
	Data        []byte
	Load, Entry uint64
}

// Load loads libPath (a path or a soname) and returns the kernel image
// krunfw_get_kernel hands out. Data is copied out of the library, so it
// stays valid whatever becomes of the mapping.
func Load(libPath string) (Image, error) {
	h, err := purego.Dlopen(libPath, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return Image{}, fmt.Errorf("load libkrunfw %s: %w", libPath, err)
	}
	defer purego.Dlclose(h)
	sym, err := purego.Dlsym(h, "krunfw_get_kernel")
	if err != nil {
		return Image{}, fmt.Errorf("load libkrunfw %s: %w", libPath, err)
	}
	// char *krunfw_get_kernel(size_t *load_addr, size_t *entry_addr, size_t *size);
	var getKernel func(load, entry, size *uintptr) unsafe.Pointer
	purego.RegisterFunc(&getKernel, sym)
	var load, entry, size uintptr
	p := getKernel(&load, &entry, &size)
	if p == nil || size == 0 {
		return Image{}, fmt.Errorf("load libkrunfw %s: krunfw_get_kernel returned no image", libPath)
	}
	data := make([]byte, size)
	copy(data, unsafe.Slice((*byte)(p), size))
	return Image{Data: data, Load: uint64(load), Entry: uint64(entry)}, nil
}

// KernelELF returns the path of libPath's kernel wrapped as a PVH ELF under
// cacheDir, named by the hash of its content. A cached file is reused as is;
// a new one is written to a temporary name and renamed into place, so a
// concurrent reader never sees a partial kernel.
//
// Finding the content hash means loading the library and hashing ~20 MB
// (about 40 ms), so a symlink named after the library file's identity
// (path, size, mtime, inode) points at the kernel it gave: a run with an
// unchanged library only reads that link. A replaced library has a new
// identity and takes the slow path once.
func KernelELF(libPath, cacheDir string) (string, error) {
	link := identityLink(libPath, cacheDir)
	if link != "" {
		if target, err := os.Readlink(link); err == nil {
			path := filepath.Join(cacheDir, target)
			if _, err := os.Stat(path); err == nil {
				return path, nil
			}
		}
	}
	img, err := Load(libPath)
	if err != nil {
		return "", err
	}
	elf, err := WrapPVH(img)
	if err != nil {
		return "", fmt.Errorf("wrap kernel of %s: %w", libPath, err)
	}
	sum := sha256.Sum256(elf)
	path := filepath.Join(cacheDir, "kernel-"+hex.EncodeToString(sum[:8])+".elf")
	if _, err := os.Stat(path); err != nil {
		if err := writeAtomic(path, elf); err != nil {
			return "", fmt.Errorf("cache kernel %s: %w", path, err)
		}
	}
	if link != "" {
		// Best effort: without the link the next run takes the slow path.
		tmp := link + ".tmp"
		os.Remove(tmp)
		if os.Symlink(filepath.Base(path), tmp) == nil && os.Rename(tmp, link) != nil {
			os.Remove(tmp)
		}
	}
	return path, nil
}

// identityLink names the fast-path link of the library file at libPath, or
// "" when libPath is a soname the loader resolves (no file to identify).
func identityLink(libPath, cacheDir string) string {
	if !filepath.IsAbs(libPath) {
		return ""
	}
	var st unix.Stat_t
	if err := unix.Stat(libPath, &st); err != nil {
		return ""
	}
	id := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d\x00%d.%d\x00%d:%d", libPath, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Dev, st.Ino))
	return filepath.Join(cacheDir, "lib-"+hex.EncodeToString(id[:8])+".kernel")
}

func writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data, 0o644)
}
