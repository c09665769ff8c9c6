// Package dataset reads and checks the datasets users upload: the
// dataset.yaml a user writes, the manifest.json whose digest names a
// dataset version, and the layout of ImageFolder, YOLO and COCO datasets,
// each problem named by file and line. It works on io/fs, so the same
// checks run on a local directory, a downloaded copy or a view of object
// storage.
package dataset
