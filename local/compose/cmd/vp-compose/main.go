// Command vp-compose is what the compose file's containers run besides the
// platform's own programs, and what make compose-up runs on the host:
//
//	vp-compose probe URL          exit 0 when URL answers 200 (healthchecks)
//	vp-compose init-minio --bucket NAME[=TARGET,...]...
//	                              make the buckets and their notifications
//	                              (MinIO from VP_S3_ENDPOINT, VP_S3_ACCESS_KEY,
//	                              VP_S3_SECRET_KEY)
//	vp-compose env --out FILE     write the compose file's .env: vp up's
//	                              credentials and this host's paths
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	miniogo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/vision-platform/vp/local/compose"
	vpcredentials "github.com/vision-platform/vp/local/credentials"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "vp-compose:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("a command is required: probe, init-minio or env")
	}
	switch args[0] {
	case "probe":
		if len(args) != 2 {
			return fmt.Errorf("probe takes one URL")
		}
		return compose.Probe(ctx, args[1])
	case "init-minio":
		return initMinIO(ctx, args[1:], out)
	case "env":
		return writeEnv(args[1:])
	}
	return fmt.Errorf("%q is not a command: probe, init-minio or env", args[0])
}

type bucketFlags []compose.Bucket

func (b *bucketFlags) String() string { return fmt.Sprint(*b) }
func (b *bucketFlags) Set(s string) error {
	v, err := compose.ParseBucket(s)
	if err != nil {
		return err
	}
	*b = append(*b, v)
	return nil
}

func initMinIO(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("init-minio", flag.ContinueOnError)
	var buckets bucketFlags
	fs.Var(&buckets, "bucket", "a bucket to make, NAME or NAME=TARGET,... (the webhook targets told of new objects); repeatable")
	if err := fs.Parse(args); err != nil {
		return err
	}
	endpoint := os.Getenv("VP_S3_ENDPOINT")
	if endpoint == "" {
		return fmt.Errorf("VP_S3_ENDPOINT is required")
	}
	mc, err := miniogo.New(endpoint, &miniogo.Options{
		Creds: credentials.NewStaticV4(os.Getenv("VP_S3_ACCESS_KEY"), os.Getenv("VP_S3_SECRET_KEY"), ""), Region: "us-east-1",
	})
	if err != nil {
		return fmt.Errorf("VP_S3_ENDPOINT %q: %w", endpoint, err)
	}
	dropped, err := compose.SetupMinIO(ctx, mc, buckets, compose.SetupOptions{})
	if err != nil {
		return err
	}
	for _, id := range dropped {
		fmt.Fprintf(out, "MinIO left out webhook target %s (it did not answer MinIO at its start): the buckets notify the others\n", id)
	}
	fmt.Fprintf(out, "MinIO at %s: %d buckets ready\n", endpoint, len(buckets))
	return nil
}

func writeEnv(args []string) error {
	fs := flag.NewFlagSet("env", flag.ContinueOnError)
	out := fs.String("out", "", "the .env file to write (required)")
	creds := fs.String("credentials", compose.DefaultCredentialsFile(), "vp up's credentials.json (made when missing)")
	rootfs := fs.String("rootfs", "", "the folder of the Debian root filesystems make deps builds")
	goroot := fs.String("goroot", "", "this host's Go toolchain (go env GOROOT)")
	gomodcache := fs.String("gomodcache", "", "this host's Go module cache (go env GOMODCACHE)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("--out is required")
	}
	c, err := vpcredentials.Load(*creds)
	if err != nil {
		return err
	}
	b, err := compose.NewEnv(c, *rootfs, *goroot, *gomodcache).Bytes()
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, b, 0o600); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	return nil
}
