// Package imagespec reads framework image specs (images/frameworks/*.yaml):
// the base, the ordered layers and their sources (dir, file, go, wheels),
// the paths a spec may override in its base, and the image config. Every
// error names the file and line.
package imagespec
