package artifact

import (
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ErrEmpty is returned by the methods of an Artifact that holds nothing
// (the zero value).
var ErrEmpty = errors.New("empty artifact: neither an image nor an index")

// Artifact is either a v1.Image or a v1.ImageIndex, never both. Like
// go-containerregistry's remote.Taggable and ko's build.Result it has a
// digest, a media type and a raw manifest whichever it holds; Image and
// Index give the value itself.
type Artifact struct {
	img v1.Image
	idx v1.ImageIndex
}

var _ remote.Taggable = Artifact{}

// FromImage is the artifact of one platform's image.
func FromImage(img v1.Image) Artifact { return Artifact{img: img} }

// FromIndex is the artifact of a multi-platform index.
func FromIndex(idx v1.ImageIndex) Artifact { return Artifact{idx: idx} }

// Image is the image, or nil when the artifact is an index.
func (a Artifact) Image() v1.Image { return a.img }

// Index is the index, or nil when the artifact is an image.
func (a Artifact) Index() v1.ImageIndex { return a.idx }

// IsIndex reports whether the artifact is an index.
func (a Artifact) IsIndex() bool { return a.idx != nil }

// IsZero reports whether the artifact holds nothing.
func (a Artifact) IsZero() bool { return a.img == nil && a.idx == nil }

// Value is the image or the index itself, for APIs that switch on the two
// (remote.Push writes the blobs of either).
func (a Artifact) Value() (remote.Taggable, error) {
	switch {
	case a.idx != nil:
		return a.idx, nil
	case a.img != nil:
		return a.img, nil
	}
	return nil, ErrEmpty
}

// Digest is the sha256 of the manifest.
func (a Artifact) Digest() (v1.Hash, error) {
	switch {
	case a.idx != nil:
		return a.idx.Digest()
	case a.img != nil:
		return a.img.Digest()
	}
	return v1.Hash{}, ErrEmpty
}

// MediaType is the manifest's media type.
func (a Artifact) MediaType() (types.MediaType, error) {
	switch {
	case a.idx != nil:
		return a.idx.MediaType()
	case a.img != nil:
		return a.img.MediaType()
	}
	return "", ErrEmpty
}

// RawManifest is the manifest's bytes.
func (a Artifact) RawManifest() ([]byte, error) {
	switch {
	case a.idx != nil:
		return a.idx.RawManifest()
	case a.img != nil:
		return a.img.RawManifest()
	}
	return nil, ErrEmpty
}

// Size is the manifest's size in bytes.
func (a Artifact) Size() (int64, error) {
	switch {
	case a.idx != nil:
		return a.idx.Size()
	case a.img != nil:
		return a.img.Size()
	}
	return 0, ErrEmpty
}

// Images lists the images: the image itself, or every image of the index
// in its order, with the platform its descriptor gives (nil for a lone
// image).
func (a Artifact) Images() ([]v1.Image, []*v1.Platform, error) {
	switch {
	case a.img != nil:
		return []v1.Image{a.img}, []*v1.Platform{nil}, nil
	case a.idx == nil:
		return nil, nil, ErrEmpty
	}
	m, err := a.idx.IndexManifest()
	if err != nil {
		return nil, nil, fmt.Errorf("reading index manifest: %w", err)
	}
	var imgs []v1.Image
	var platforms []*v1.Platform
	for _, d := range m.Manifests {
		if !d.MediaType.IsImage() {
			continue
		}
		img, err := a.idx.Image(d.Digest)
		if err != nil {
			return nil, nil, fmt.Errorf("reading image %s of the index: %w", d.Digest, err)
		}
		imgs = append(imgs, img)
		platforms = append(platforms, d.Platform)
	}
	return imgs, platforms, nil
}

// First is the image, or the first image of the index.
func (a Artifact) First() (v1.Image, error) {
	imgs, _, err := a.Images()
	if err != nil {
		return nil, err
	}
	if len(imgs) == 0 {
		return nil, errors.New("the index holds no image")
	}
	return imgs[0], nil
}
