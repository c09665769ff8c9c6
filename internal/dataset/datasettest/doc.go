// Package datasettest writes small valid datasets of each format
// (ImageFolder, YOLO, COCO) with generated PNG images, for the tests of
// the packages that read datasets.
package datasettest
