// Package wheeltest writes wheel files for tests and benchmarks: valid
// ones, and ones whose members differ from their RECORD. Only tests import
// it.
package wheeltest
