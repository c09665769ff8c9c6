// Package sender delivers CloudEvents over HTTP with the platform's one
// retry policy: to a broker ingress (vp emit), to K_SINK (the run agent and
// the functions), or as JSON lines when there is no sink.
package sender
