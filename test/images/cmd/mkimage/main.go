// Command mkimage writes the nodedebug test images as OCI image-layout tars.
//
//	mkimage toolbox -o toolbox.tar [-busybox /usr/bin/busybox]
//	mkimage pause   -o pause.tar   [-binary ./pause]
//	mkimage target  -o target.tar  [-binary ./target]
//
// Without -binary, pause and target are built with go build, which needs the
// current directory to be inside the nodedebug module.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/nodedebug/nodedebug/test/images"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

type options struct {
	image   string
	out     string
	busybox string
	binary  string
}

func run(ctx context.Context, args []string) error {
	opts, err := parse(args)
	if err != nil {
		return err
	}

	work, err := os.MkdirTemp("", "mkimage-")
	if err != nil {
		return fmt.Errorf("create work dir: %w", err)
	}
	defer os.RemoveAll(work)

	if err := build(ctx, work, opts); err != nil {
		return fmt.Errorf("build %s image: %w", opts.image, err)
	}
	fmt.Println(opts.out)
	return nil
}

func parse(args []string) (options, error) {
	if len(args) == 0 {
		return options{}, errors.New("usage: mkimage toolbox|pause|target -o out.tar")
	}
	opts := options{image: args[0]}

	fs := flag.NewFlagSet("mkimage "+opts.image, flag.ContinueOnError)
	fs.StringVar(&opts.out, "o", "", "output tar")
	fs.StringVar(&opts.busybox, "busybox", "/usr/bin/busybox", "static busybox for toolbox")
	fs.StringVar(&opts.binary, "binary", "", "prebuilt static binary for pause or target")
	if err := fs.Parse(args[1:]); err != nil {
		return options{}, err
	}

	if opts.out == "" {
		return options{}, errors.New("-o is required")
	}
	return opts, nil
}

func build(ctx context.Context, work string, opts options) error {
	switch opts.image {
	case "toolbox":
		return images.Toolbox(ctx, work, opts.busybox, opts.out)
	case "pause":
		bin, err := binary(ctx, work, opts.binary, images.PausePackage)
		if err != nil {
			return err
		}
		return images.Pause(work, bin, opts.out)
	case "target":
		bin, err := binary(ctx, work, opts.binary, images.TargetPackage)
		if err != nil {
			return err
		}
		return images.Target(work, bin, opts.out)
	default:
		return fmt.Errorf("unknown image %q (want toolbox, pause or target)", opts.image)
	}
}

// binary returns the prebuilt binary if given, else builds pkg into work.
func binary(ctx context.Context, work, prebuilt, pkg string) (string, error) {
	if prebuilt != "" {
		return prebuilt, nil
	}
	out := filepath.Join(work, filepath.Base(pkg))
	return out, images.BuildBinary(ctx, pkg, out)
}
