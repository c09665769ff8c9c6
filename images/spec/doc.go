// Package spec reads framework image specs (images/frameworks/*.yaml): the
// base, the ordered layers and their sources (dir, file, go, wheels), and the
// image config. Every error names the file and line.
package spec
