package wheel

import (
	"regexp"
	"strconv"
	"strings"
)

// versionRE reads a version as PEP 440 allows it to be written (its
// appendix's permissive form), lower case.
var versionRE = regexp.MustCompile(`^v?` +
	`(?:([0-9]+)!)?` + // epoch
	`([0-9]+(?:\.[0-9]+)*)` + // release
	`(?:[-_.]?(a|b|c|rc|alpha|beta|pre|preview)[-_.]?([0-9]+)?)?` + // pre
	`(?:-([0-9]+)|[-_.]?(post|rev|r)[-_.]?([0-9]+)?)?` + // post, implicit or spelt
	`(?:[-_.]?(dev)[-_.]?([0-9]+)?)?` + // dev
	`(?:\+([a-z0-9]+(?:[-_.][a-z0-9]+)*))?$`) // local

// NormalizeVersion is a version's canonical form under PEP 440, so that
// two spellings of one version compare equal: "0.1.1-2209072238" (an
// implicit post release, as a distribution's METADATA may give it and pip's
// report repeats) and "0.1.1.post2209072238" (its wheel's file name); "1.0"
// and "1.0.0"; "1.0RC1" and "1.0rc1". A string that is no PEP 440 version
// is returned lower-cased.
func NormalizeVersion(v string) string {
	v = strings.ToLower(strings.TrimSpace(v))
	m := versionRE.FindStringSubmatch(v)
	if m == nil {
		return v
	}
	num := func(s string) string {
		if s == "" {
			return "0"
		}
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return strings.TrimLeft(s, "0")
		}
		return strconv.FormatUint(n, 10)
	}
	var b strings.Builder
	if m[1] != "" && num(m[1]) != "0" {
		b.WriteString(num(m[1]) + "!")
	}
	release := strings.Split(m[2], ".")
	for i := range release {
		release[i] = num(release[i])
	}
	// Trailing zeros do not change a release: 1.0.0 == 1.0 == 1.
	for len(release) > 1 && release[len(release)-1] == "0" {
		release = release[:len(release)-1]
	}
	b.WriteString(strings.Join(release, "."))
	if m[3] != "" {
		b.WriteString(map[string]string{"a": "a", "alpha": "a", "b": "b", "beta": "b", "c": "rc", "rc": "rc", "pre": "rc", "preview": "rc"}[m[3]])
		b.WriteString(num(m[4]))
	}
	switch {
	case m[5] != "":
		b.WriteString(".post" + num(m[5]))
	case m[6] != "":
		b.WriteString(".post" + num(m[7]))
	}
	if m[8] != "" {
		b.WriteString(".dev" + num(m[9]))
	}
	if m[10] != "" {
		b.WriteString("+" + sepRE.ReplaceAllString(m[10], "."))
	}
	return b.String()
}

// IsWheelOf reports whether filename is a wheel of the requirement's name
// and version (name-version[-build]-python-abi-platform.whl), comparing
// names as PEP 503 normalises them and versions as PEP 440 does: a wheel's
// file name may spell either differently from the lock.
func IsWheelOf(filename string, r Requirement) bool {
	if !strings.HasSuffix(filename, ".whl") {
		return false
	}
	parts := strings.Split(strings.TrimSuffix(filename, ".whl"), "-")
	if len(parts) != 5 && len(parts) != 6 {
		return false
	}
	// PEP 427 escapes - in a file name's version as _.
	return Normalize(parts[0]) == Normalize(r.Name) &&
		NormalizeVersion(strings.ReplaceAll(parts[1], "_", "-")) == NormalizeVersion(r.Version)
}
