package nixcheck

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
)

// root is the module root: tests run in their package directory.
const root = "../.."

// nixEval evaluates a Nix expression (with no nixpkgs: plain imports and
// builtins only) and returns its value as JSON-decoded into v.
func nixEval(t *testing.T, expr string, v any) {
	t.Helper()
	bin := testenv.RequireCommand(t, "nix-instantiate", "nix-bin")
	cmd := exec.Command(bin, "--eval", "--strict", "--json", "--expr", expr)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nix-instantiate --eval %s: %v\n%s", expr, err, stderrOf(err))
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("nix-instantiate --eval %s: %q: %v", expr, out, err)
	}
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// TestNixFilesParse: every .nix file of the repository parses.
func TestNixFilesParse(t *testing.T) {
	bin := testenv.RequireCommand(t, "nix-instantiate", "nix-bin")
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "bin" || d.Name() == "vendor") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".nix") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"flake.nix", "nix/package.nix", "nix/guest-init.nix", "nix/vendor-hash.nix"} {
		if _, err := os.Stat(filepath.Join(root, want)); err != nil {
			t.Errorf("%s: %v", want, err)
		}
	}
	for _, f := range files {
		out, err := exec.Command(bin, "--parse", f).CombinedOutput()
		if err != nil {
			t.Errorf("nix-instantiate --parse %s: %v\n%s", f, err, out)
		}
	}
}

// flakeLock is the part of flake.lock (version 7) loftd's lock must have.
type flakeLock struct {
	Version int    `json:"version"`
	Root    string `json:"root"`
	Nodes   map[string]struct {
		Inputs map[string]any `json:"inputs"`
		Locked *struct {
			LastModified int64  `json:"lastModified"`
			NarHash      string `json:"narHash"`
			Owner        string `json:"owner"`
			Repo         string `json:"repo"`
			Rev          string `json:"rev"`
			Type         string `json:"type"`
		} `json:"locked"`
		Original *struct {
			Owner string `json:"owner"`
			Repo  string `json:"repo"`
			Ref   string `json:"ref"`
			Type  string `json:"type"`
		} `json:"original"`
	} `json:"nodes"`
}

// checkSRI reports whether s is an SRI sha256 hash: "sha256-" and the
// base64 of 32 bytes.
func checkSRI(s string) bool {
	b64, ok := strings.CutPrefix(s, "sha256-")
	if !ok {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(b64)
	return err == nil && len(b) == sha256.Size
}

// TestNixFlakeLock: flake.lock is valid JSON pinning nixpkgs to a full
// revision with a narHash, on the branch flake.nix asks for, and the
// comment in flake.nix names that revision.
func TestNixFlakeLock(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "flake.lock"))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var lock flakeLock
	if err := dec.Decode(&lock); err != nil {
		t.Fatalf("flake.lock: %v", err)
	}
	if lock.Version != 7 || lock.Root == "" {
		t.Fatalf("flake.lock: version %d root %q, want version 7 and a root", lock.Version, lock.Root)
	}
	name, _ := lock.Nodes[lock.Root].Inputs["nixpkgs"].(string)
	n, ok := lock.Nodes[name]
	if !ok || n.Locked == nil || n.Original == nil {
		t.Fatalf("flake.lock: root input nixpkgs names node %q, which has no locked/original", name)
	}
	l := n.Locked
	if l.Type != "github" || l.Owner != "NixOS" || l.Repo != "nixpkgs" {
		t.Errorf("flake.lock: nixpkgs locked to %s:%s/%s, want github:NixOS/nixpkgs", l.Type, l.Owner, l.Repo)
	}
	if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(l.Rev) {
		t.Errorf("flake.lock: nixpkgs rev %q, want a full commit id", l.Rev)
	}
	if !checkSRI(l.NarHash) {
		t.Errorf("flake.lock: nixpkgs narHash %q, want sha256-<base64 of 32 bytes>", l.NarHash)
	}
	if l.LastModified <= 0 {
		t.Errorf("flake.lock: nixpkgs lastModified %d", l.LastModified)
	}
	var url string
	nixEval(t, "(import ./flake.nix).inputs.nixpkgs.url", &url)
	if want := "github:NixOS/nixpkgs/" + n.Original.Ref; url != want {
		t.Errorf("flake.nix asks for %s, flake.lock's original is %s (run nix flake update)", url, want)
	}
	flake, err := os.ReadFile(filepath.Join(root, "flake.nix"))
	if err != nil {
		t.Fatal(err)
	}
	if short := l.Rev[:12]; !bytes.Contains(flake, []byte(short)) {
		t.Errorf("flake.nix's comment does not name the pinned nixpkgs rev %s: update it with the lock", short)
	}
}

// vendorHash is what buildGoModule's vendorHash must be for the module at
// dir: the NAR hash (SRI sha256) of `go mod vendor`'s output.
func vendorHash(t *testing.T, dir string) string {
	t.Helper()
	goBin := testenv.RequireCommand(t, "go", "golang-go")
	nix := testenv.RequireCommand(t, "nix", "nix-bin")
	out := filepath.Join(t.TempDir(), "vendor")
	cmd := exec.Command(goBin, "mod", "vendor", "-o", out)
	cmd.Dir = dir
	// buildGoModule vendors with the toolchain it builds with, never a
	// downloaded one.
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go mod vendor: %v\n%s", err, b)
	}
	return narHash(t, nix, out)
}

func narHash(t *testing.T, nix, path string) string {
	t.Helper()
	b, err := exec.Command(nix, "--extra-experimental-features", "nix-command", "hash", "path", "--type", "sha256", "--sri", path).Output()
	if err != nil {
		t.Fatalf("nix hash path %s: %v\n%s", path, err, stderrOf(err))
	}
	return strings.TrimSpace(string(b))
}

// TestNixVendorHash: nix/vendor-hash.nix is the hash of the vendor tree of
// today's go.mod and go.sum, so a dependency change that forgets it fails
// here rather than in a Nix build nobody runs locally.
func TestNixVendorHash(t *testing.T) {
	var pinned string
	nixEval(t, "import ./nix/vendor-hash.nix", &pinned)
	if !checkSRI(pinned) {
		t.Fatalf("nix/vendor-hash.nix = %q, want sha256-<base64 of 32 bytes>", pinned)
	}
	got := vendorHash(t, root)
	if got != pinned {
		t.Errorf("nix/vendor-hash.nix = %s, but go.mod/go.sum vendor to %s: run scripts/nix-vendor-hash", pinned, got)
	}
}

// TestNixVendorHashSeesChanges: the hash is over the vendored files
// themselves, so changing any dependency's code (or modules.txt, which
// lists versions) changes it and TestNixVendorHash fails.
func TestNixVendorHashSeesChanges(t *testing.T) {
	nix := testenv.RequireCommand(t, "nix", "nix-bin")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "modules.txt"), []byte("# example.com/dep v1.0.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := narHash(t, nix, dir)
	if err := os.WriteFile(filepath.Join(dir, "modules.txt"), []byte("# example.com/dep v1.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if after := narHash(t, nix, dir); after == before {
		t.Errorf("nix hash path did not change when modules.txt did (%s)", after)
	}
}
