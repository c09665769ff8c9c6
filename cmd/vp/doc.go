// Command vp is the Vision Platform command-line tool.
package main
