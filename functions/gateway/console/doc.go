// Package console is the gateway's web console: html/template pages and
// their static files (CSS and JavaScript, embedded; no build step, nothing
// fetched from elsewhere), and the data each page is rendered from.
package console
