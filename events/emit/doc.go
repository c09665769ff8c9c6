// Package emit builds CloudEvents from loose input (a CLI's flags, another
// system's request) and sends them to a broker ingress.
package emit
