package session

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/loftd/loftd/imagebuild"
	"github.com/loftd/loftd/images"
	"github.com/loftd/loftd/rootfs"
)

// offerBuild: agentbox in a terminal, with the default image missing, asks
// whether to build it now rather than only naming the command. It builds
// on the imported offline base when the store has one (loftd image
// import), else on the recipe's registry base. It reports whether it
// built; a "no" (or no terminal, or loftd rather than agentbox) is false.
func offerBuild(ctx context.Context, e IO, store *rootfs.Store) (bool, error) {
	if e.Prog != "agentbox" || !isTerminal(os.Stdin) || !isTerminal(os.Stderr) {
		return false, nil
	}
	base := "the recipe's base (docker.io/library/debian:bookworm)"
	args := map[string]string{}
	if _, err := store.Resolve(ctx, images.DefaultBase, rootfs.PullNever, nil); err == nil {
		base, args["BASE"] = images.DefaultBase, images.DefaultBase
	}
	fmt.Fprintf(e.Stderr, "%s: the default image %s is not built. Build it now on %s (a few minutes)? [Y/n] ", e.Prog, images.Default, base)
	yes, err := askYes(e.Stdin)
	if err != nil || !yes {
		return false, err
	}
	opts := imagebuild.Options{Tag: images.Default, Containerfile: images.DefaultContainerfile, Out: e.Stderr, Args: args, Log: e.Log}
	if _, err := imagebuild.Build(ctx, store, opts); err != nil {
		return false, fmt.Errorf("build the default image: %w (%s)", err, BuildHint)
	}
	return true, nil
}

// askYes reads one answer line: empty, y or yes is yes.
func askYes(r io.Reader) (bool, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("read the answer: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "", "y", "yes":
		return err == nil || line != "", nil
	}
	return false, nil
}
