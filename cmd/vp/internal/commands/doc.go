// Package commands holds vp's cobra commands: flag parsing and wiring only;
// the work is done by the packages they call.
package commands
