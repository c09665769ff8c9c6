// Package registry is the model catalog: which models the platform can
// train, for which task and dataset formats, with what defaults and input
// size, in which framework image and adapter, and whether each is ready.
package registry
