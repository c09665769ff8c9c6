// Package wheel installs Python wheels (PEP 427) without pip: lock files
// pinning every wheel by sha256, a local wheelhouse or a PEP 691 simple
// index to take them from, and an installer that lays a wheel out as a
// site-packages tree (.data scheme mapping, console_scripts, RECORD,
// INSTALLER) for an image layer.
package wheel
