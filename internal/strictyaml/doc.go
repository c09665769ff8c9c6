// Package strictyaml decodes YAML documents into structs with unknown
// fields refused and every error placed at its file and line, for the
// platform's hand-written files (Knative triggers, image specs).
package strictyaml
