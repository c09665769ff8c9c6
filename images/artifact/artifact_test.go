package artifact

import (
	"errors"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

func TestArtifact(t *testing.T) {
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	other, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: other, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	for _, c := range []struct {
		desc  string
		a     Artifact
		of    interface{ Digest() (v1.Hash, error) }
		index bool
		first v1.Image
		n     int
	}{
		{"image", FromImage(img), img, false, img, 1},
		{"index", FromIndex(idx), idx, true, img, 2},
	} {
		t.Run(c.desc, func(t *testing.T) {
			got, err := c.a.Digest()
			if err != nil {
				t.Fatal(err)
			}
			want, err := c.of.Digest()
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("Digest() = %s, want %s", got, want)
			}
			if c.a.IsIndex() != c.index || (c.a.Index() != nil) != c.index || (c.a.Image() != nil) == c.index || c.a.IsZero() {
				t.Errorf("IsIndex %v, Index %v, Image %v, IsZero %v; want an index: %v", c.a.IsIndex(), c.a.Index(), c.a.Image(), c.a.IsZero(), c.index)
			}
			mt, err := c.a.MediaType()
			if err != nil || mt.IsIndex() != c.index {
				t.Errorf("MediaType() = %s, %v", mt, err)
			}
			imgs, _, err := c.a.Images()
			if err != nil || len(imgs) != c.n {
				t.Fatalf("Images() = %d images, %v; want %d", len(imgs), err, c.n)
			}
			first, err := c.a.First()
			if err != nil {
				t.Fatal(err)
			}
			fd, err := first.Digest()
			if err != nil {
				t.Fatal(err)
			}
			wd, err := c.first.Digest()
			if err != nil {
				t.Fatal(err)
			}
			if fd != wd {
				t.Errorf("First() = %s, want %s", fd, wd)
			}
		})
	}
	var zero Artifact
	if _, err := zero.Digest(); !errors.Is(err, ErrEmpty) || !zero.IsZero() {
		t.Errorf("zero Artifact: Digest() error %v, IsZero %v; want ErrEmpty", err, zero.IsZero())
	}
	if _, err := zero.Value(); !errors.Is(err, ErrEmpty) {
		t.Errorf("zero Artifact: Value() error %v, want ErrEmpty", err)
	}
}
