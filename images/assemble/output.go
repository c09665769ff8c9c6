package assemble

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// output is where Build also writes an image: an OCI layout or a tarball.
type output struct {
	kind string // "oci" or "tar"
	path string
	dest string // as given
}

func parseOutput(dest string) (output, error) {
	kind, p, ok := strings.Cut(dest, ":")
	if !ok || p == "" || (kind != "oci" && kind != "tar") {
		return output{}, &FieldError{Field: FieldOutput, Value: dest, Err: ErrBadOutput}
	}
	return output{kind: kind, path: p, dest: dest}, nil
}

// writeOutput writes r to the builder's output.
func (b *Builder) writeOutput(r *Result) error {
	o := b.output
	switch o.kind {
	case "oci":
		lp, err := layout.FromPath(o.path)
		if err != nil {
			if lp, err = layout.Write(o.path, empty.Index); err != nil {
				return fmt.Errorf("creating layout %s: %w", o.path, err)
			}
		}
		m := match.Annotation(RefNameAnnotation, r.Name)
		ann := layout.WithAnnotations(map[string]string{RefNameAnnotation: r.Name})
		if idx := r.Artifact.Index(); idx != nil {
			err = lp.ReplaceIndex(idx, m, ann)
		} else {
			err = lp.ReplaceImage(r.Artifact.Image(), m, ann)
		}
		if err != nil {
			return fmt.Errorf("writing %s to layout %s: %w", r.Name, o.path, err)
		}
	case "tar":
		b.mu.Lock()
		b.tarImages++
		n := b.tarImages
		b.mu.Unlock()
		if n > 1 {
			return &FieldError{Field: FieldOutput, Value: o.dest, Err: ErrOneImage}
		}
		tag := b.tarTag
		if tag == "" {
			tag = "vp/" + r.Name + ":latest"
		}
		ref, err := name.NewTag(tag)
		if err != nil {
			return &FieldError{Field: FieldTag, Value: tag, Err: err}
		}
		img, err := r.Artifact.First()
		if err != nil {
			return fmt.Errorf("writing %s to %s: %w", r.Name, o.path, err)
		}
		if err := tarball.WriteToFile(o.path, ref, img); err != nil {
			return fmt.Errorf("writing %s to %s: %w", r.Name, o.path, err)
		}
	}
	r.Output = o.dest
	return nil
}
