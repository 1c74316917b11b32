package imagebuild

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
	"github.com/loftd/loftd/rootfs"
)

// badRootTars are inputs `loftd image import` must refuse, each made in
// dir: Buildah's Add took every one of them (random bytes and an empty file
// as a file in an empty image, a directory as its contents).
func badRootTars(t *testing.T, dir string, good string) map[string]string {
	t.Helper()
	random := make([]byte, 4096)
	if _, err := rand.Read(random); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"random.bin":    random,
		"empty.tar":     {},
		"zeros.tar":     make([]byte, 10240), // a tar's end marker and nothing else
		"truncated.tar": data[:len(data)/2],
	}
	out := map[string]string{}
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		out[name] = p
	}
	d := filepath.Join(dir, "rootdir")
	if err := os.MkdirAll(filepath.Join(d, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	out["directory"] = d
	return out
}

// TestCheckRootTar: a root tar passes; what is not one is refused with one
// line naming the file and what import wants.
func TestCheckRootTar(t *testing.T) {
	good := testenv.BusyboxTar(t)
	if err := checkRootTar(good); err != nil {
		t.Errorf("checkRootTar(a root tar) = %v, want nil", err)
	}
	for name, p := range badRootTars(t, t.TempDir(), good) {
		err := checkRootTar(p)
		if !errors.Is(err, errNotRootTar) {
			t.Errorf("checkRootTar(%s) = %v, want errNotRootTar", name, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, p) || strings.Contains(msg, "\n") || len(msg) > 300 {
			t.Errorf("checkRootTar(%s) = %q, want one short line naming %s", name, msg, p)
		}
	}
}

// TestImportRefusesAndKeepsTag: a refused import leaves the tag it was
// given on the image it named before (a directory once replaced
// localhost/debian-base:bookworm).
func TestImportRefusesAndKeepsTag(t *testing.T) {
	testenv.RequireRoot(t)
	store, err := rootfs.Open(rootfs.Options{Root: filepath.Join(t.TempDir(), "images")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	good := testenv.BusyboxTar(t)
	before, err := Import(ctx, store, good, "base:keep")
	if err != nil {
		t.Fatalf("Import(good): %v", err)
	}
	for name, p := range badRootTars(t, t.TempDir(), good) {
		if img, err := Import(ctx, store, p, "base:keep"); !errors.Is(err, errNotRootTar) {
			t.Errorf("Import(%s) = %+v, %v; want errNotRootTar", name, img, err)
		}
		got, err := store.Resolve(ctx, "localhost/base:keep", rootfs.PullNever, nil)
		if err != nil || got.ID != before.ID {
			t.Errorf("after Import(%s): localhost/base:keep = %+v, %v; want image %s", name, got, err, before.ID)
		}
	}
}
