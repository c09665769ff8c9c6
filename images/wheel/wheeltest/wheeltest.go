package wheeltest

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
)

// Make writes a valid wheel to dir: name and version, the given files
// (path in the wheel -> content; paths under <name>-<version>.data/ use
// the .data schemes), a WHEEL file and a RECORD listing every file with its
// hash, every member deflated. It returns the wheel's path and hex
// sha256. Entries of tamper are written after RECORD is made, so their
// RECORD lines no longer match.
func Make(dir, name, version string, files map[string][]byte, tamper map[string][]byte) (string, string, error) {
	distInfo := name + "-" + version + ".dist-info"
	all := map[string][]byte{distInfo + "/WHEEL": []byte("Wheel-Version: 1.0\nGenerator: vp-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")}
	for k, v := range files {
		all[k] = v
	}
	var rows [][]string
	for p, b := range all {
		s := sha256.Sum256(b)
		rows = append(rows, []string{p, "sha256=" + base64.RawURLEncoding.EncodeToString(s[:]), strconv.Itoa(len(b))})
	}
	rows = append(rows, []string{distInfo + "/RECORD", "", ""})
	sort.Slice(rows, func(i, j int) bool { return rows[i][0] < rows[j][0] })
	var rec bytes.Buffer
	if err := csv.NewWriter(&rec).WriteAll(rows); err != nil {
		return "", "", fmt.Errorf("writing RECORD: %w", err)
	}
	all[distInfo+"/RECORD"] = rec.Bytes()
	for k, v := range tamper {
		all[k] = v
	}
	names := make([]string, 0, len(all))
	for k := range all {
		names = append(names, k)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range names {
		h := &zip.FileHeader{Name: n, Method: zip.Deflate}
		h.SetMode(0o644)
		if filepath.Ext(n) == ".sh" {
			h.SetMode(0o755)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			return "", "", fmt.Errorf("adding %s: %w", n, err)
		}
		if _, err := w.Write(all[n]); err != nil {
			return "", "", fmt.Errorf("adding %s: %w", n, err)
		}
	}
	if err := zw.Close(); err != nil {
		return "", "", fmt.Errorf("closing zip: %w", err)
	}
	p := filepath.Join(dir, name+"-"+version+"-py3-none-any.whl")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		return "", "", fmt.Errorf("writing wheel: %w", err)
	}
	s := sha256.Sum256(buf.Bytes())
	return p, hex.EncodeToString(s[:]), nil
}
