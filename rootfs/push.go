package rootfs

import (
	"context"
	"fmt"
	"io"

	"github.com/containers/image/v5/copy"
	"github.com/containers/image/v5/signature"
	is "github.com/containers/image/v5/storage"
	"github.com/containers/image/v5/transports/alltransports"
)

// Push copies the cached image name (as `loftd images` lists it) to dest,
// any containers/image reference: docker://REGISTRY/NAME:TAG with the
// store's credentials (AuthFile), docker-archive:FILE:NAME:TAG for `podman
// load`, oci-archive:FILE, oci:DIR:TAG. It is how the runner image
// (deploy/Containerfile) reaches a cluster's registry.
func (s *Store) Push(ctx context.Context, name, dest string, progress io.Writer) error {
	img, err := s.Resolve(ctx, name, PullNever, nil)
	if err != nil {
		return fmt.Errorf("push %s: %w", name, err)
	}
	dst, err := alltransports.ParseImageName(dest)
	if err != nil {
		return fmt.Errorf("push %s: destination %q: %w (want a transport: docker://, docker-archive:, oci-archive:, oci:)", name, dest, err)
	}
	src, err := is.Transport.ParseStoreReference(s.store, "@"+img.ID)
	if err != nil {
		return fmt.Errorf("push %s: %w", name, err)
	}
	policy, err := signature.NewPolicyFromFile(s.policyPath)
	if err != nil {
		return fmt.Errorf("push %s: signature policy %s: %w", name, s.policyPath, err)
	}
	pc, err := signature.NewPolicyContext(policy)
	if err != nil {
		return fmt.Errorf("push %s: %w", name, err)
	}
	defer pc.Destroy()
	sys := s.systemContext()
	if _, err := copy.Image(ctx, pc, dst, src, &copy.Options{ReportWriter: progress, SourceCtx: sys, DestinationCtx: sys}); err != nil {
		return fmt.Errorf("push %s to %s: %w%s", name, dest, err, authHint(err, s.authFile))
	}
	return nil
}
