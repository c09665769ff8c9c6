// Package deadletter is the dead-letter function: the broker's dead-letter
// sink, which keeps every event the broker gave up on in object storage
// (bucket dead-letters, one object per event under its date), and the
// reading side of that store, which lists kept events by type and time and
// sends them back to a broker (vp replay).
package deadletter
