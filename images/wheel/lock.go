package wheel

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// Requirement is one pinned wheel of a lock file.
type Requirement struct {
	Name    string   // as written
	Version string   // exact
	Hashes  []string // allowed sha256 digests, hex
	Line    int
}

// Normalize is PEP 503's name normalisation: runs of -, _ and . become -,
// lower case.
func Normalize(name string) string {
	return strings.ToLower(sepRE.ReplaceAllString(name, "-"))
}

var (
	sepRE  = regexp.MustCompile(`[-_.]+`)
	reqRE  = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([A-Za-z0-9.+!_-]+)\s*(;.*)?$`)
	hashRE = regexp.MustCompile(`^--hash=sha256:([a-f0-9]{64})$`)
)

// ParseLock reads a pip-style lock file, as pip-compile --generate-hashes
// writes it: name==version lines with --hash=sha256:... options, backslash
// continuations and comments. Every requirement must be pinned with at
// least one sha256; errors name the file and line.
func ParseLock(file string) ([]Requirement, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading lock: %w", err)
	}
	var out []Requirement
	seen := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	lineNo, start := 0, 0
	var logical strings.Builder
	flush := func() error {
		text := strings.TrimSpace(logical.String())
		logical.Reset()
		if text == "" {
			return nil
		}
		fields := strings.Fields(text)
		var spec []string
		var hashes []string
		for _, f := range fields {
			if strings.HasPrefix(f, "--") {
				m := hashRE.FindStringSubmatch(f)
				if m == nil {
					return fmt.Errorf("%s:%d: %q: only --hash=sha256:<64 hex> options are allowed", file, start, f)
				}
				hashes = append(hashes, m[1])
				continue
			}
			spec = append(spec, f)
		}
		m := reqRE.FindStringSubmatch(strings.Join(spec, " "))
		if m == nil {
			return fmt.Errorf("%s:%d: %q is not name==version", file, start, strings.Join(spec, " "))
		}
		if len(hashes) == 0 {
			return fmt.Errorf("%s:%d: %s has no --hash=sha256:...; every wheel must be pinned by hash", file, start, m[1])
		}
		n := Normalize(m[1])
		if prev, dup := seen[n]; dup {
			return fmt.Errorf("%s:%d: %s is also pinned at line %d", file, start, m[1], prev)
		}
		seen[n] = start
		out = append(out, Requirement{Name: m[1], Version: m[3], Hashes: hashes, Line: start})
		return nil
	}
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		if i := strings.Index(line, "#"); i >= 0 && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
			line = line[:i]
		}
		if logical.Len() == 0 {
			start = lineNo
		}
		cont := strings.HasSuffix(strings.TrimRight(line, " \t"), "\\")
		line = strings.TrimSuffix(strings.TrimRight(line, " \t"), "\\")
		logical.WriteString(line + " ")
		if !cont {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}
