package review

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pmezard/go-difflib/difflib"
	"golang.org/x/sys/unix"
)

// maxTextDiff bounds each side of a text diff: past it a file is listed
// as changed, with its sizes, and not diffed (go-difflib's matcher is
// quadratic in the worst case, and a terminal is no place for 100 MB).
const maxTextDiff = 1 << 20

// sniffBytes is how much of a file decides whether it is text.
const sniffBytes = 8000

// isBinary reports whether the upper file rel looks binary: a NUL byte or
// invalid UTF-8 in its first sniffBytes, as git decides.
func isBinary(root int, rel string) (bool, error) {
	f, err := openFile(root, rel)
	if err != nil {
		return false, err
	}
	defer f.Close()
	buf, err := io.ReadAll(io.LimitReader(f, sniffBytes))
	if err != nil {
		return false, err
	}
	return binaryBytes(buf), nil
}

func binaryBytes(b []byte) bool {
	if bytes.IndexByte(b, 0) >= 0 {
		return true
	}
	// A cut at sniffBytes may split a rune: allow an incomplete tail.
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n <= 1 {
			return len(b) >= utf8.UTFMax
		}
		b = b[n:]
	}
	return false
}

// Show quotes a guest-chosen path for a terminal: a name with a newline,
// an escape sequence or invalid UTF-8 is printed Go-quoted, so it can
// neither fake a line of the listing nor drive the terminal.
func Show(p string) string {
	for _, r := range p {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError || r == '"' || (r >= 0x80 && r < 0xa0) {
			return strconv.Quote(p)
		}
	}
	if !utf8.ValidString(p) {
		return strconv.Quote(p)
	}
	return p
}

// Line is the one-line description of a change.
func Line(c Change) string {
	var b strings.Builder
	if len(c.Flags) > 0 {
		b.WriteString("! ")
	} else {
		b.WriteString("  ")
	}
	fmt.Fprintf(&b, "%-11s %s", c.Kind, Show(c.Path))
	switch {
	case c.Kind == Renamed:
		fmt.Fprintf(&b, " (from %s)", Show(c.From))
	case c.Type == Symlink && c.Kind != Deleted:
		fmt.Fprintf(&b, " -> %s (symlink)", Show(c.Target))
	case c.Type == Dir:
		b.WriteString("/")
	}
	if c.Kind == ModeChanged || (c.Kind == Modified && c.OldMode != c.NewMode && c.Type != Symlink) {
		fmt.Fprintf(&b, " mode %v -> %v", c.OldMode, c.NewMode)
	} else if c.Kind == Added && c.Type == File {
		fmt.Fprintf(&b, " mode %v", c.NewMode)
	}
	if c.Binary {
		b.WriteString(" (binary)")
	}
	if c.Note != "" {
		fmt.Fprintf(&b, " [%s]", c.Note)
	}
	for _, f := range c.Flags {
		fmt.Fprintf(&b, "\n    ^ %s", f)
	}
	return b.String()
}

// Diff writes the change list, flagged changes first, then a unified diff
// of each text file that was added, modified or renamed with changes.
func Diff(w io.Writer, l Layers, changes []Change) error {
	for _, c := range changes {
		if _, err := fmt.Fprintln(w, Line(c)); err != nil {
			return err
		}
	}
	up, err := openRoot(l.Upper)
	if err != nil {
		return err
	}
	defer unix.Close(up)
	ws, err := openRoot(l.Workspace)
	if err != nil {
		return err
	}
	defer unix.Close(ws)
	for _, c := range changes {
		if c.Type != File || c.Binary || (c.Kind != Added && c.Kind != Modified && c.Kind != Renamed) {
			continue
		}
		if err := textDiff(w, up, ws, c); err != nil {
			return err
		}
	}
	return nil
}

func textDiff(w io.Writer, up, ws int, c Change) error {
	oldPath := c.Path
	if c.Kind == Renamed {
		oldPath = c.From
	}
	var old []byte
	if c.Kind != Added {
		b, ok, err := readBounded(ws, oldPath)
		if err != nil || !ok {
			fmt.Fprintf(w, "--- %s: not diffed (%s)\n", Show(c.Path), whyNot(err))
			return nil
		}
		if binaryBytes(b) {
			return nil
		}
		old = b
	}
	cur, ok, err := readBounded(up, c.Path)
	if err != nil || !ok {
		fmt.Fprintf(w, "--- %s: not diffed (%s)\n", Show(c.Path), whyNot(err))
		return nil
	}
	from := "a/" + oldPath
	if c.Kind == Added {
		from = "/dev/null"
	}
	text, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(string(old)), B: difflib.SplitLines(string(cur)),
		FromFile: Show(from), ToFile: Show("b/" + c.Path), Context: 3,
	})
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, visible(text))
	return err
}

// visible escapes the control characters of guest-written text other
// than tab and newline (as \x1b, \r, \u009b): a diff line must not move
// the cursor, clear the screen or overwrite the flagged lines above it.
func visible(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\t' || r == '\n':
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func whyNot(err error) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("larger than %d bytes", maxTextDiff)
}

// readBounded reads rel when it is at most maxTextDiff bytes (ok false when larger).
func readBounded(root int, rel string) ([]byte, bool, error) {
	f, err := openFile(root, rel)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTextDiff+1))
	if err != nil {
		return nil, false, err
	}
	return b, len(b) <= maxTextDiff, nil
}
