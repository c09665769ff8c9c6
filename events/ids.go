package events

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
)

// hashID is a stable id from its parts: "<kind>-<40 hex of sha256>".
func hashID(kind string, parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(strconv.Itoa(len(p))))
		h.Write([]byte{':'})
		h.Write([]byte(p))
	}
	return kind + "-" + hex.EncodeToString(h.Sum(nil))[:40]
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }

// DatasetUploadedID is the id of the dataset.uploaded event for one object
// version of a manifest. MinIO redelivering the same notification, or two
// emitters reporting the same version, give the same id, so the broker
// drops the duplicate. Without a version id the content digest stands in.
func DatasetUploadedID(bucket, manifestKey, versionID, digest string) string {
	v := versionID
	if v == "" {
		v = digest
	}
	return hashID("ds", bucket, manifestKey, v)
}

// JobID is the id of training model on the dataset with digest
// datasetDigest under hp: the same three always give the same job.
// Hyperparameters are hashed in canonical JSON (encoding/json sorts map
// keys), so the order in which a caller wrote them does not matter.
func JobID(datasetDigest string, model ModelRef, hp Hyperparameters) string {
	b, err := json.Marshal(struct {
		D string          `json:"d"`
		M ModelRef        `json:"m"`
		H Hyperparameters `json:"h"`
	}{datasetDigest, model, hp})
	if err != nil {
		// Only Extra can fail to marshal (a value JSON cannot hold); hash
		// what can be hashed rather than panic.
		b = []byte(datasetDigest + "\x00" + model.String())
	}
	sum := sha256.Sum256(b)
	return "job-" + hex.EncodeToString(sum[:])[:20]
}
