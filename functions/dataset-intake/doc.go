// Package datasetintake is the dataset-intake function: MinIO's webhook
// target posts its object notifications here, and once a dataset is
// complete in storage (its dataset.yaml there and, when it declares files
// or bytes, every data object too) the function writes the dataset's
// content manifest (manifest.json) and posts dataset.uploaded to K_SINK,
// or dataset.rejected when its dataset.yaml does not parse. A .zip, .tar.gz
// or .tgz archive uploaded outside any dataset is checked whole and
// unpacked into a prefix named after it, whose objects then complete the
// dataset as any upload does.
//
// The work is done within the notification (bounded by a deadline under
// MinIO's timeout): an unreachable store or sink is a 503, and MinIO, which
// keeps undelivered notifications in its queue_dir, delivers it again. The
// event ids are deterministic, so a notification delivered twice gives the
// same event, which the broker drops; the function also remembers the work
// it has done, so that a burst of notifications for one dataset posts one
// event.
package datasetintake
