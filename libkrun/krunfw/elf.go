package krunfw

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
)

// xenNoteType is XEN_ELFNOTE_PHYS32_ENTRY: the note whose payload is the
// 32-bit PVH entry point QEMU boots an uncompressed kernel through.
const xenNoteType = 18

const (
	ehdrSize  = 64
	phdrSize  = 56
	dataAlign = 0x1000
)

// ErrNoPVHNote means the image carries no Xen PVH note, so QEMU cannot boot it.
var ErrNoPVHNote = errors.New("no Xen PVH entry note (type 18) in the kernel image")

// FindPVHNote returns the offset in data of the ELF note named "Xen" of type
// 18, and the note's total size (header, name and payload, 4-byte aligned).
func FindPVHNote(data []byte) (off, size int, err error) {
	// Note header: namesz=4, descsz, type=18, then "Xen\0". Notes are
	// 4-byte aligned in the kernel's .notes section.
	needle := []byte("Xen\x00")
	for i := 0; i+16 <= len(data); {
		j := bytes.Index(data[i:], needle)
		if j < 0 {
			break
		}
		at := i + j - 12
		i += j + 1
		if at < 0 || at%4 != 0 {
			continue
		}
		namesz := binary.LittleEndian.Uint32(data[at:])
		descsz := binary.LittleEndian.Uint32(data[at+4:])
		typ := binary.LittleEndian.Uint32(data[at+8:])
		if namesz != 4 || typ != xenNoteType || (descsz != 4 && descsz != 8) {
			continue
		}
		size = 16 + int(descsz+3)&^3
		if at+size > len(data) {
			continue
		}
		return at, size, nil
	}
	return 0, 0, ErrNoPVHNote
}

// WrapPVH wraps img as an ELF64 executable QEMU boots via PVH: one PT_LOAD
// placing the whole image at img.Load, one PT_NOTE over the Xen PVH note the
// image already holds (QEMU finds the entry point only through a PT_NOTE).
func WrapPVH(img Image) ([]byte, error) {
	noteOff, noteSize, err := FindPVHNote(img.Data)
	if err != nil {
		return nil, err
	}
	if img.Load == 0 {
		return nil, fmt.Errorf("kernel image has load address 0")
	}
	var buf bytes.Buffer
	le := binary.LittleEndian
	hdr := elf.Header64{
		Type:      uint16(elf.ET_EXEC),
		Machine:   uint16(elf.EM_X86_64),
		Version:   uint32(elf.EV_CURRENT),
		Entry:     img.Entry,
		Phoff:     ehdrSize,
		Ehsize:    ehdrSize,
		Phentsize: phdrSize,
		Phnum:     2,
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	hdr.Ident[elf.EI_OSABI] = byte(elf.ELFOSABI_NONE)
	load := elf.Prog64{
		Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_W | elf.PF_X),
		Off: dataAlign, Vaddr: img.Load, Paddr: img.Load,
		Filesz: uint64(len(img.Data)), Memsz: uint64(len(img.Data)), Align: dataAlign,
	}
	// QEMU steps over the note name with the segment's alignment: it must
	// be 4, the alignment notes are written with.
	note := elf.Prog64{
		Type: uint32(elf.PT_NOTE), Flags: uint32(elf.PF_R),
		Off: dataAlign + uint64(noteOff), Vaddr: img.Load + uint64(noteOff), Paddr: img.Load + uint64(noteOff),
		Filesz: uint64(noteSize), Memsz: uint64(noteSize), Align: 4,
	}
	for _, v := range []any{hdr, load, note} {
		if err := binary.Write(&buf, le, v); err != nil {
			return nil, err
		}
	}
	buf.Write(make([]byte, dataAlign-buf.Len()))
	buf.Write(img.Data)
	return buf.Bytes(), nil
}
