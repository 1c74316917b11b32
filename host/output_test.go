package host

import (
	"bytes"
	"github.com/loftd/loftd/contract"
	"strings"
	"testing"
	"time"

	"github.com/loftd/loftd/host/session"
	"github.com/loftd/loftd/rootfs"
)

func TestHumanSize(t *testing.T) {
	for _, tt := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{999, "999 B"},
		{1000, "1 kB"},
		{457_000_000, "457 MB"},
		{456_789_012, "457 MB"},
		{1_234_567_890, "1.23 GB"},
		{999_950_000, "1 GB"}, // rounds up to the next unit, not "1e+03 MB"
		{12_300_000_000_000, "12.3 TB"},
	} {
		if got := humanSize(tt.n); got != tt.want {
			t.Errorf("humanSize(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestParseAge(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"7d", 7 * 24 * time.Hour, true},
		{"0d", 0, true},
		{"0", 0, true},
		{"36h", 36 * time.Hour, true},
		{"90m", 90 * time.Minute, true},
		{"1.5d", 0, false},
		{"-1d", 0, false},
		{"-1h", 0, false},
		{"week", 0, false},
		{"", 0, false},
	} {
		got, err := parseAge(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseAge(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// TestJSONSchema pins the field names and shapes of --format json: every
// field filled, compared with a literal (docs/json.md documents it).
func TestJSONSchema(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tt := range []struct {
		name  string
		print func(*bytes.Buffer) error
		want  string
	}{
		{"images", func(b *bytes.Buffer) error {
			return printImages(b, "json", []rootfs.ImageInfo{{Refs: []string{"localhost/loftd:latest"}, Digest: "sha256:ab", ID: "cd", Size: 457_000_000, Pulled: at, LastUsed: at.Add(time.Hour)}})
		}, `[
  {
    "refs": ["localhost/loftd:latest"],
    "digest": "sha256:ab",
    "id": "cd",
    "size": 457000000,
    "pulled": "2025-01-02T03:04:05Z",
    "last_used": "2025-01-02T04:04:05Z"
  }
]`},
		{"images empty", func(b *bytes.Buffer) error { return printImages(b, "json", nil) }, `[]`},
		{"ps", func(b *bytes.Buffer) error {
			return printTasks(b, "json", []taskJSON{{ID: "20250101T000000-0000000a", PID: 42, Started: at, VMM: "qemu", Workspace: "/src/p", RSS: 1 << 30,
				Live: true, Detached: true, Uptime: 90, Sessions: []contract.LiveSession{{ID: "3", Kind: "exec", User: "dev", Command: []string{"make"}, TTY: false, Started: at}}}})
		}, `[
  {
    "id": "20250101T000000-0000000a",
    "pid": 42,
    "started": "2025-01-02T03:04:05Z",
    "vmm": "qemu",
    "workspace": "/src/p",
    "rss": 1073741824,
    "live": true,
    "detached": true,
    "uptime_seconds": 90,
    "sessions": [{"id": "3", "kind": "exec", "user": "dev", "command": ["make"], "tty": false, "started": "2025-01-02T03:04:05Z"}]
  }
]`},
		{"ps empty", func(b *bytes.Buffer) error { return printTasks(b, "json", []taskJSON{}) }, `[]`},
		{"doctor", func(b *bytes.Buffer) error {
			return printDoctor(b, "json", []check{
				{name: "/dev/kvm", level: "warn", detail: "no such file", fix: "modprobe kvm"},
				{name: "qemu", level: "ok", detail: "qemu 9", fix: "not shown when ok"},
			}, "qemu")
		}, `{
  "checks": [
    {"name": "/dev/kvm", "level": "warn", "detail": "no such file", "fix": "modprobe kvm"},
    {"name": "qemu", "level": "ok", "detail": "qemu 9"}
  ],
  "backend": "qemu"
}`},
		{"doctor no backend", func(b *bytes.Buffer) error { return printDoctor(b, "json", nil, "") }, `{"checks": [], "backend": ""}`},
	} {
		var b bytes.Buffer
		if err := tt.print(&b); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got, want := compact(b.String()), compact(tt.want); got != want {
			t.Errorf("%s --format json:\ngot  %s\nwant %s", tt.name, got, want)
		}
	}
}

// compact drops the layout whitespace of a JSON text (the values here hold
// no spaces that matter... except inside strings, kept by splitting on
// quotes).
func compact(s string) string {
	parts := strings.Split(s, `"`)
	for i := 0; i < len(parts); i += 2 {
		parts[i] = strings.Join(strings.Fields(parts[i]), "")
	}
	return strings.Join(parts, `"`)
}

// TestImagesTableSizes: the table prints sizes as people read them.
func TestImagesTableSizes(t *testing.T) {
	var b bytes.Buffer
	if err := printImages(&b, "table", []rootfs.ImageInfo{{Refs: []string{"r"}, Digest: "sha256:0123456789abcdef", Size: 456_789_012}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "457 MB") || !strings.Contains(b.String(), "sha256:0123456789ab ") {
		t.Errorf("loftd images table:\n%s\nwant the size as 457 MB and a short digest", b.String())
	}
}

// TestFormatFlagRejectsUnknown: a typo in --format is a usage error
// (status 2), before any state is touched.
func TestFormatFlagRejectsUnknown(t *testing.T) {
	c := newCLI(t)
	for _, cmd := range []string{"images", "ps", "doctor"} {
		status, stdout, stderr := c.run(cmd, "--format", "yaml")
		if status != session.ExitUsage || !strings.Contains(stderr, "want table or json") {
			t.Errorf("loftd %s --format yaml: status %d, stdout %q, stderr %q; want 2 and the allowed formats", cmd, status, stdout, stderr)
		}
	}
}

// TestImageGCSelection: gc --images removes what no live task uses and was
// last used before the cutoff; --all ignores the age, never the live task.
func TestImageGCSelection(t *testing.T) {
	now := time.Now()
	images := []rootfs.ImageInfo{
		{Refs: []string{"old"}, Digest: "sha256:old", LastUsed: now.Add(-30 * 24 * time.Hour)},
		{Refs: []string{"recent"}, Digest: "sha256:recent", LastUsed: now.Add(-time.Minute)},
		{Refs: []string{"old-live"}, Digest: "sha256:old-live", LastUsed: now.Add(-30 * 24 * time.Hour)},
	}
	for _, tt := range []struct {
		name string
		g    imageGC
		want string
	}{
		{"older than 7d", imageGC{cutoff: now.Add(-7 * 24 * time.Hour), keep: []string{"sha256:old-live"}}, "old"},
		{"older than 0", imageGC{cutoff: now, keep: []string{"sha256:old-live"}}, "old,recent"},
		{"all", imageGC{all: true, cutoff: now.Add(-7 * 24 * time.Hour), keep: []string{"sha256:old-live"}}, "old,recent"},
	} {
		var got []string
		for _, im := range images {
			if tt.g.remove(im) {
				got = append(got, im.Refs[0])
			}
		}
		if strings.Join(got, ",") != tt.want {
			t.Errorf("%s: removes %v, want %s", tt.name, got, tt.want)
		}
	}
}
