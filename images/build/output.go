package build

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// WriteOutput writes a built image to dest: "oci:DIR" adds it to an OCI
// image layout (created if need be), "tar:FILE" writes a tarball that
// `docker load` takes, tagged tag (a multi-platform image writes its first
// platform). Blobs are copied, never compressed again.
func WriteOutput(b Built, dest, tag string) error {
	kind, p, ok := strings.Cut(dest, ":")
	if !ok || p == "" {
		return fmt.Errorf("--output %q: want oci:DIR or tar:FILE", dest)
	}
	switch kind {
	case "oci":
		lp, err := layout.FromPath(p)
		if err != nil {
			if lp, err = layout.Write(p, empty.Index); err != nil {
				return fmt.Errorf("creating layout %s: %w", p, err)
			}
		}
		ann := layout.WithAnnotations(map[string]string{RefNameAnnotation: b.Name})
		if b.Index != nil {
			return lp.ReplaceIndex(b.Index, match.Annotation(RefNameAnnotation, b.Name), ann)
		}
		return lp.ReplaceImage(b.Image, match.Annotation(RefNameAnnotation, b.Name), ann)
	case "tar":
		ref, err := name.NewTag(tag)
		if err != nil {
			return fmt.Errorf("tag %q: %w", tag, err)
		}
		img, err := firstImage(b)
		if err != nil {
			return err
		}
		return tarball.WriteToFile(p, ref, img)
	}
	return fmt.Errorf("--output %q: want oci:DIR or tar:FILE", dest)
}
