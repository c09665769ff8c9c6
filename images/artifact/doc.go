// Package artifact is what an image build makes and a push sends: one
// platform's v1.Image or a multi-platform v1.ImageIndex, as one typed value.
package artifact
