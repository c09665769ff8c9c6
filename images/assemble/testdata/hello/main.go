// Command hello is a tiny main package the builder tests put into images.
package main

import "fmt"

func main() { fmt.Println("hello from the image") }
