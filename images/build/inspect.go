package build

import (
	"fmt"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Built is an image recorded in the cache's layout.
type Built struct {
	Name   string
	Digest v1.Hash
	Index  v1.ImageIndex // for a multi-platform spec
	Image  v1.Image      // otherwise
}

// Images lists the images built into the cache, by name.
func (c *Cache) Images() ([]Built, error) {
	idx, err := c.layout.ImageIndex()
	if err != nil {
		return nil, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var out []Built
	for _, d := range m.Manifests {
		b := Built{Name: d.Annotations[RefNameAnnotation], Digest: d.Digest}
		if b.Name == "" {
			continue
		}
		if d.MediaType.IsIndex() {
			if b.Index, err = idx.ImageIndex(d.Digest); err != nil {
				return nil, err
			}
		} else if b.Image, err = idx.Image(d.Digest); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Lookup finds a built image by name.
func (c *Cache) Lookup(name string) (Built, error) {
	all, err := c.Images()
	if err != nil {
		return Built{}, err
	}
	for _, b := range all {
		if b.Name == name {
			return b, nil
		}
	}
	return Built{}, fmt.Errorf("%s has not been built (vp images build %s)", name, name)
}

// LayerUse is a layer of an inspected image and the other images that use
// it.
type LayerUse struct {
	Name     string   `json:"name"`
	Digest   string   `json:"digest"`
	Size     int64    `json:"size"`
	SharedBy []string `json:"sharedBy,omitempty"`
}

// Inspection describes a built image: its layers, their sizes and which
// bytes it shares with the other images built.
type Inspection struct {
	Name        string     `json:"name"`
	Digest      string     `json:"digest"`
	Platform    string     `json:"platform"`
	Layers      []LayerUse `json:"layers"`
	TotalBytes  int64      `json:"totalBytes"`
	SharedBytes int64      `json:"sharedBytes"`
}

// Inspect describes the named image (its first platform).
func (c *Cache) Inspect(name string) (*Inspection, error) {
	all, err := c.Images()
	if err != nil {
		return nil, err
	}
	users := map[string][]string{}
	var target *Built
	for i, b := range all {
		img, err := firstImage(b)
		if err != nil {
			return nil, err
		}
		m, err := img.Manifest()
		if err != nil {
			return nil, err
		}
		for _, l := range m.Layers {
			users[l.Digest.String()] = append(users[l.Digest.String()], b.Name)
		}
		if b.Name == name {
			target = &all[i]
		}
	}
	if target == nil {
		return nil, fmt.Errorf("%s has not been built (vp images build %s)", name, name)
	}
	img, err := firstImage(*target)
	if err != nil {
		return nil, err
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	out := &Inspection{Name: name, Digest: target.Digest.String(), Platform: cf.OS + "/" + cf.Architecture}
	for _, l := range m.Layers {
		u := LayerUse{Name: l.Annotations[LayerNameKey], Digest: l.Digest.String(), Size: l.Size}
		for _, other := range users[l.Digest.String()] {
			if other != name {
				u.SharedBy = append(u.SharedBy, other)
			}
		}
		out.TotalBytes += l.Size
		if len(u.SharedBy) > 0 {
			out.SharedBytes += l.Size
		}
		out.Layers = append(out.Layers, u)
	}
	return out, nil
}

func firstImage(b Built) (v1.Image, error) {
	if b.Image != nil {
		return b.Image, nil
	}
	m, err := b.Index.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(m.Manifests) == 0 {
		return nil, fmt.Errorf("%s: empty index", b.Name)
	}
	return b.Index.Image(m.Manifests[0].Digest)
}
