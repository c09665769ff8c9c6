package datasetintake

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
)

// notification is the body MinIO's webhook target posts: S3's event
// notification records, with MinIO's EventName and Key (bucket/key of the
// first record) beside them. Fields the function does not read are left
// out; unknown fields are allowed.
type notification struct {
	EventName string   `json:"EventName"`
	Key       string   `json:"Key"`
	Records   []record `json:"Records"`
}

// record is one S3 event record.
type record struct {
	EventName string `json:"eventName"`
	S3        struct {
		Bucket struct {
			Name string `json:"name"`
		} `json:"bucket"`
		Object struct {
			// Key is URL-escaped as a query value: spaces as '+', the rest
			// %-escaped ("cats%2Fa+b.png").
			Key       string `json:"key"`
			Size      int64  `json:"size"`
			ETag      string `json:"eTag"`
			VersionID string `json:"versionId"`
		} `json:"object"`
	} `json:"s3"`
}

// object is one record resolved: what happened to which object.
type object struct {
	Event     string // s3:ObjectCreated:Put, ...
	Bucket    string
	Key       string // unescaped
	Size      int64
	ETag      string
	VersionID string
}

// parseNotification decodes a webhook body into its objects. An empty
// body, or one without records, is MinIO's test of the target: no objects
// and no error. A record whose bucket or key is missing or whose key does
// not unescape is listed in bad (the rest are still handled); a body that
// is not a notification is an error.
func parseNotification(body []byte) (objs []object, bad []string, err error) {
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil, nil, nil
	}
	var n notification
	if err := json.Unmarshal(body, &n); err != nil {
		return nil, nil, fmt.Errorf("decoding notification: %w", err)
	}
	for i, r := range n.Records {
		o := r.S3.Object
		key, err := url.QueryUnescape(o.Key)
		switch {
		case r.S3.Bucket.Name == "" || o.Key == "":
			bad = append(bad, fmt.Sprintf("Records[%d]: no bucket or key", i))
			continue
		case err != nil:
			bad = append(bad, fmt.Sprintf("Records[%d]: key %q: %v", i, o.Key, err))
			continue
		}
		objs = append(objs, object{
			Event: r.EventName, Bucket: r.S3.Bucket.Name, Key: key,
			Size: o.Size, ETag: strings.Trim(o.ETag, `"`), VersionID: o.VersionID,
		})
	}
	return objs, bad, nil
}

// createdEvents are the s3:ObjectCreated events that bring new content.
// The others of that family (PutRetention, PutLegalHold, PutTagging,
// DeleteTagging, ...) change an object's settings, not its bytes.
var createdEvents = map[string]bool{
	"s3:ObjectCreated:Put":                     true,
	"s3:ObjectCreated:Post":                    true,
	"s3:ObjectCreated:Copy":                    true,
	"s3:ObjectCreated:CompleteMultipartUpload": true,
}

// createsContent says whether an event brings new content.
func createsContent(eventName string) bool { return createdEvents[eventName] }
