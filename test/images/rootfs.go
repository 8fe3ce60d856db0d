package images

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Refs of the images this package builds.
const (
	ToolboxRef = "nodedebug.local/toolbox:latest"
	PauseRef   = "nodedebug.local/pause:test"
	TargetRef  = "nodedebug.local/target:test"
)

// Go packages of the test binaries, built with BuildBinary.
const (
	PausePackage  = "github.com/nodedebug/nodedebug/test/images/pause"
	TargetPackage = "github.com/nodedebug/nodedebug/test/images/target"
)

// NonRootUID is the distroless "nonroot" user the target image runs as.
const NonRootUID = 65532

// TargetConfig is the content of /etc/app.conf in the target image.
const TargetConfig = "greeting=hello\nlevel=info\n"

const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Toolbox lays out a busybox rootfs under workDir and writes the toolbox
// image to out. busybox is the static busybox to copy, e.g. /usr/bin/busybox.
func Toolbox(ctx context.Context, workDir, busybox, out string) error {
	rootfs := filepath.Join(workDir, "toolbox-rootfs")
	if err := layoutToolbox(ctx, rootfs, busybox); err != nil {
		return fmt.Errorf("lay out toolbox rootfs in %s: %w", rootfs, err)
	}

	spec := Spec{
		Ref:   ToolboxRef,
		Owner: &Owner{},
		Gzip:  true,
		Config: ocispec.ImageConfig{
			Cmd:        []string{"/bin/sh"},
			Env:        []string{defaultPath},
			WorkingDir: "/",
		},
	}
	return Write(rootfs, out, spec)
}

func layoutToolbox(ctx context.Context, rootfs, busybox string) error {
	applets, err := busyboxApplets(ctx, busybox)
	if err != nil {
		return err
	}

	files := []file{
		{path: "bin", dir: true, mode: 0o755},
		{path: "etc", dir: true, mode: 0o755},
		{path: "root", dir: true, mode: 0o700},
		{path: "tmp", dir: true, mode: os.ModeSticky | 0o777},
		{path: "etc/passwd", mode: 0o644, data: passwd},
		{path: "etc/group", mode: 0o644, data: group},
		{path: "bin/busybox", mode: 0o755, copyFrom: busybox},
	}
	for _, applet := range applets {
		if applet == "busybox" {
			continue
		}
		files = append(files, file{path: "bin/" + applet, link: "busybox"})
	}
	return layout(rootfs, files)
}

// busyboxApplets asks busybox itself which applets it has.
func busyboxApplets(ctx context.Context, busybox string) ([]string, error) {
	out, err := exec.CommandContext(ctx, busybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("list applets of %s: %w", busybox, err)
	}

	var applets []string
	for _, name := range strings.Fields(string(out)) {
		if !strings.Contains(name, "/") {
			applets = append(applets, name)
		}
	}
	return applets, nil
}

// Pause writes the pause image with the given static binary as /pause.
func Pause(workDir, binary, out string) error {
	rootfs := filepath.Join(workDir, "pause-rootfs")
	files := []file{{path: "pause", mode: 0o755, copyFrom: binary}}
	if err := layout(rootfs, files); err != nil {
		return fmt.Errorf("lay out pause rootfs in %s: %w", rootfs, err)
	}

	spec := Spec{
		Ref:    PauseRef,
		Owner:  &Owner{},
		Config: ocispec.ImageConfig{Entrypoint: []string{"/pause"}},
	}
	return Write(rootfs, out, spec)
}

// Target writes the distroless target image: /app, /etc/app.conf and a
// nonroot user, and no shell, like the images users ask us to debug.
func Target(workDir, binary, out string) error {
	rootfs := filepath.Join(workDir, "target-rootfs")
	files := []file{
		{path: "app", mode: 0o755, copyFrom: binary},
		{path: "etc", dir: true, mode: 0o755},
		{path: "etc/app.conf", mode: 0o644, data: TargetConfig},
		{path: "etc/passwd", mode: 0o644, data: passwd},
		{path: "etc/group", mode: 0o644, data: group},
		{path: "home", dir: true, mode: 0o755},
		{path: "home/nonroot", dir: true, mode: 0o700},
		{path: "tmp", dir: true, mode: os.ModeSticky | 0o777},
	}
	if err := layout(rootfs, files); err != nil {
		return fmt.Errorf("lay out target rootfs in %s: %w", rootfs, err)
	}

	nonroot := Owner{UID: NonRootUID, GID: NonRootUID}
	spec := Spec{
		Ref:    TargetRef,
		Owner:  &Owner{},
		Owners: map[string]Owner{"home/nonroot": nonroot},
		Config: ocispec.ImageConfig{
			User:       fmt.Sprintf("%d:%d", NonRootUID, NonRootUID),
			Entrypoint: []string{"/app"},
			Env:        []string{defaultPath},
			WorkingDir: "/",
		},
	}
	return Write(rootfs, out, spec)
}

// BuildBinary builds a static Go binary of pkg into out. It runs in the
// current directory, which must be inside this module.
func BuildBinary(ctx context.Context, pkg, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w: %s", pkg, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

const passwd = `root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
`

const group = `root:x:0:
nobody:x:65534:
nonroot:x:65532:
`

// What a target started with -crash leaves behind, for tests to check.
const (
	TargetErrorFile     = "/tmp/last-error"
	TargetCrashMessage  = "fatal: simulated crash: config check failed\n"
	TargetCrashExitCode = 3
)
