// Package wheel installs Python wheels (PEP 427) without pip: lock files
// pinning every wheel by sha256, a local wheelhouse or a PEP 691 simple
// index to take them from, a store that keeps a copy of each wheel only
// once its hash matched the lock (before anything of it is unpacked), and
// an installer that lays a stored wheel out as a site-packages tree (.data
// scheme mapping, console_scripts, RECORD, INSTALLER) for an image layer.
package wheel
