package session

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestToolMounts(t *testing.T) {
	home := t.TempDir()
	for _, d := range []string{".config/gh", ".claude"} {
		if err := os.MkdirAll(filepath.Join(home, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(home, ".gitconfig"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	custom := []string{"~/.claude", "~/.nothing"}
	none := []string{}
	tests := []struct {
		name    string
		profile string
		mounts  *[]string
		live    bool
		want    []Volume
	}{
		// Issue 17 item 6: by default a directory is a read-only share the
		// guest overlays; the file stays a copy.
		{"defaults that exist", "agentbox", nil, false, []Volume{
			{Source: filepath.Join(home, ".claude"), Target: "/home/dev/.claude", ReadOnly: true, Overlay: true},
			{Source: filepath.Join(home, ".config/gh"), Target: "/home/dev/.config/gh", ReadOnly: true, Overlay: true},
			{Source: filepath.Join(home, ".gitconfig"), Target: "/home/dev/.gitconfig", File: true},
		}},
		{"live", "agentbox", nil, true, []Volume{
			{Source: filepath.Join(home, ".claude"), Target: "/home/dev/.claude"},
			{Source: filepath.Join(home, ".config/gh"), Target: "/home/dev/.config/gh"},
			{Source: filepath.Join(home, ".gitconfig"), Target: "/home/dev/.gitconfig", File: true},
		}},
		{"configured", "agentbox", &custom, false, []Volume{{Source: filepath.Join(home, ".claude"), Target: "/home/dev/.claude", ReadOnly: true, Overlay: true}}},
		{"configured none", "agentbox", &none, false, nil},
		{"loftd has none", "loftd", nil, false, nil},
	}
	for _, tt := range tests {
		got, err := toolMounts(tt.profile, &Config{Agentbox: AgentboxConfig{Mounts: tt.mounts}}, home, tt.live)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: toolMounts = %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
	}
}

func TestCapToolShares(t *testing.T) {
	var errb strings.Builder
	e := IO{Prog: "agentbox", Stderr: &errb}
	vols := []Volume{{Source: "/h/.codex"}, {Source: "/h/.gitconfig", File: true}, {Source: "/h/.claude"}, {Source: "/h/.config/gh"}}
	got := capToolShares(e, vols)
	if len(got) != 3 || got[2].Source != "/h/.claude" || !strings.Contains(errb.String(), "/h/.config/gh") {
		t.Errorf("capToolShares = %+v, stderr %q; want two directories and the file kept, ~/.config/gh named as left out", got, errb.String())
	}
}

func TestDropShadowedTools(t *testing.T) {
	tools := []Volume{{Source: "/h/.claude", Target: "/home/dev/.claude"}, {Source: "/h/.gitconfig", Target: "/home/dev/.gitconfig", File: true}}
	tests := []struct {
		vols     []Volume
		want     int
		wantNote string
	}{
		{nil, 2, ""},
		{[]Volume{{Source: "/mine", Target: "/home/dev/.claude"}}, 1, "not mounting /h/.claude: --volume /mine:/home/dev/.claude takes its place"},
		{[]Volume{{Source: "/mine", Target: "/home/dev/.claude/x"}}, 2, ""},
	}
	for _, tt := range tests {
		var errb strings.Builder
		e := IO{Prog: "agentbox", Stderr: &errb}
		got := dropShadowedTools(e, tools, tt.vols)
		if len(got) != tt.want || !strings.Contains(errb.String(), tt.wantNote) || (tt.wantNote == "" && errb.Len() > 0) {
			t.Errorf("dropShadowedTools(%+v) = %+v, stderr %q; want %d kept and %q", tt.vols, got, errb.String(), tt.want, tt.wantNote)
		}
	}
}
