// Package imagebuilder is the image-builder function: on job.requested it
// resolves the model in the catalog (registry) and ensures the model's
// framework image with the daemonless assembler (images/assemble), then
// answers image.built, carrying the job on, or image.failed with why.
//
// An image whose inputs have not changed since its last build (the
// assembler's Stamp) and which the registry still holds is a cache hit,
// answered at once in the reply. Otherwise the image is built, one build
// at a time per spec; a build that takes longer than the reply window
// (VP_REPLY_WITHIN, under func-go's 30 s write timeout) is answered at once
// and reported by event through K_SINK when it ends. Jobs waiting on a
// build are kept on disk beside the cache, so a restart picks them up.
package imagebuilder
