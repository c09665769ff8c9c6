// Package gpurunner is the gpu-runner function: on image.built it launches
// the job's training run (the run agent in the job's framework image)
// through an executor (a process on this host, a container on the local
// Docker Engine, or a Kubernetes Job) and answers with run.started; on
// job.cancelled it cancels the job's run. A job has one run, whose id
// derives from the job's, so a redelivered image.built never starts a
// second run.
package gpurunner
