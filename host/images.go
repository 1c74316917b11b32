package host

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/loftd/loftd/host/session"
	"github.com/loftd/loftd/rootfs"
)

func runImages(e *env, args []string) error {
	fs := e.newFlagSet("images", e.Prog+" images [--format table|json]")
	format := formatFlag(fs)
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if err := checkFormat("images", *format); err != nil {
		return err
	}
	store, err := session.StoreInNamespace(e.IO, "")
	if err != nil {
		return err
	}
	defer store.Close()
	imgs, err := store.Images()
	if err != nil {
		return err
	}
	return printImages(e.Stdout, *format, imgs)
}

func printImages(w io.Writer, format string, imgs []rootfs.ImageInfo) error {
	if format == "json" {
		out := make([]imageJSON, 0, len(imgs))
		for _, im := range imgs {
			out = append(out, imageJSON{Refs: im.Refs, Digest: im.Digest, ID: im.ID, Size: im.Size, Pulled: im.Pulled, LastUsed: im.LastUsed})
		}
		return writeJSON(w, out)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REFERENCE\tDIGEST\tSIZE\tLAST USED")
	for _, im := range imgs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", strings.Join(im.Refs, ","), shortDigest(im.Digest), humanSize(im.Size), im.LastUsed.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

func shortDigest(d string) string {
	if _, hex, ok := strings.Cut(d, ":"); ok && len(hex) > 12 {
		return d[:len(d)-len(hex)] + hex[:12]
	}
	return d
}
