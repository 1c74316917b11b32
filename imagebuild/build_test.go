package imagebuild

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
	"github.com/loftd/loftd/rootfs"
	"github.com/loftd/loftd/rootfs/rootfstest"
)

func TestMain(m *testing.M) {
	// Buildah's copier and chroot isolation re-exec this binary.
	if InitReexec() {
		return
	}
	if os.Getenv(killChildEnv) != "" {
		os.Exit(killChild())
	}
	os.Exit(m.Run())
}

func TestNormalizeTag(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"loftd", "localhost/loftd:latest"},
		{"loftd:v1", "localhost/loftd:v1"},
		{"localhost/loftd:latest", "localhost/loftd:latest"},
		{"me/dev", "localhost/me/dev:latest"},
		{"quay.io/me/dev:1", "quay.io/me/dev:1"},
		{"registry:5000/dev", "registry:5000/dev:latest"},
	} {
		got, err := NormalizeTag(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("NormalizeTag(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if got, err := NormalizeTag(""); err == nil {
		t.Errorf("NormalizeTag(\"\") = %q, want an error", got)
	}
}

// recipe has a RUN step (chroot isolation, host network) and a COPY from
// the context directory.
const recipe = `ARG BASE
FROM ${BASE}
RUN echo hi > /hello
COPY greeting /greeting
`

// TestBuild builds recipe on a base from an OCI layout and on a base
// imported from a root tar: the image is tagged, resolvable through the
// cache, has RUN's and COPY's files, and a second build is a cache hit.
func TestBuild(t *testing.T) {
	testenv.RequireRoot(t)
	for _, tt := range []struct {
		name string
		base func(t *testing.T, store *rootfs.Store) string
	}{
		{"oci layout base", func(t *testing.T, _ *rootfs.Store) string {
			return rootfstest.Build(t, rootfstest.Spec{Dir: filepath.Join(t.TempDir(), "layout")})
		}},
		{"imported tar base", func(t *testing.T, store *rootfs.Store) string {
			img, err := Import(context.Background(), store, testenv.BusyboxTar(t), "base:test")
			if err != nil {
				t.Fatalf("Import: %v", err)
			}
			if img.Ref != "docker://localhost/base:test" {
				t.Errorf("Import recorded %q, want docker://localhost/base:test", img.Ref)
			}
			return "localhost/base:test"
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			store, err := rootfs.Open(rootfs.Options{Root: filepath.Join(t.TempDir(), "images")})
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			base := tt.base(t, store)
			contextDir := t.TempDir()
			if err := os.WriteFile(filepath.Join(contextDir, "greeting"), []byte("hello from COPY\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			opts := Options{Containerfile: []byte(recipe), ContextDir: contextDir, Tag: "test-build", Args: map[string]string{"BASE": base}}
			img, err := Build(ctx, store, opts)
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			got, err := store.Resolve(ctx, "localhost/test-build:latest", rootfs.PullNever, nil)
			if err != nil || got.ID != img.ID {
				t.Fatalf("Resolve(localhost/test-build:latest) = %+v, %v; want image %s from the cache", got, err, img.ID)
			}
			task, err := store.NewTask(ctx, img, filepath.Join(t.TempDir(), "task"), rootfs.BackendAuto)
			if err != nil {
				t.Fatal(err)
			}
			defer task.Remove()
			for file, want := range map[string]string{"/hello": "hi\n", "/greeting": "hello from COPY\n"} {
				if b, err := os.ReadFile(filepath.Join(task.Root, file)); err != nil || string(b) != want {
					t.Errorf("%s in the built image = %q, %v; want %q", file, b, err, want)
				}
			}
			again, err := Build(ctx, store, opts)
			if err != nil {
				t.Fatalf("second Build: %v", err)
			}
			if again.ID != img.ID {
				t.Errorf("second Build of an unchanged recipe = image %s, want the cached %s", again.ID, img.ID)
			}
		})
	}
}

// TestImportAgain: importing the same tar again makes the same image, so a
// build on the base stays a cache hit.
func TestImportAgain(t *testing.T) {
	testenv.RequireRoot(t)
	store, err := rootfs.Open(rootfs.Options{Root: filepath.Join(t.TempDir(), "images")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	tar := testenv.BusyboxTar(t)
	var ids []string
	for range 2 {
		img, err := Import(context.Background(), store, tar, "base")
		if err != nil {
			t.Fatalf("Import: %v", err)
		}
		ids = append(ids, img.ID)
	}
	if ids[0] != ids[1] {
		t.Errorf("Import of one tar twice = images %s and %s, want one image", ids[0], ids[1])
	}
}
