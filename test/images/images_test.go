package images

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteIsDeterministic guards that the same rootfs gives byte-identical
// tars, so image digests stay stable between runs.
func TestWriteIsDeterministic(t *testing.T) {
	rootfs := t.TempDir()
	files := []file{
		{path: "etc", dir: true, mode: 0o755},
		{path: "etc/app.conf", mode: 0o644, data: TargetConfig},
		{path: "tmp", dir: true, mode: os.ModeSticky | 0o777},
		{path: "link", link: "etc/app.conf"},
	}
	if err := layout(rootfs, files); err != nil {
		t.Fatal(err)
	}

	spec := Spec{Ref: "nodedebug.local/x:1", Gzip: true}
	var outs [2][]byte
	for i := range outs {
		out := filepath.Join(t.TempDir(), "x.tar")
		if err := Write(rootfs, out, spec); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		outs[i] = data
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Error("two writes of the same rootfs differ")
	}
}

func TestTarTreeKeepsModesOwnersAndLinks(t *testing.T) {
	rootfs := t.TempDir()
	files := []file{
		{path: "home", dir: true, mode: 0o755},
		{path: "home/nonroot", dir: true, mode: 0o700},
		{path: "home/nonroot/f", mode: 0o600, data: "x"},
		{path: "tmp", dir: true, mode: os.ModeSticky | 0o777},
		{path: "sh", link: "busybox"},
	}
	if err := layout(rootfs, files); err != nil {
		t.Fatal(err)
	}

	spec := Spec{Owner: &Owner{}, Owners: map[string]Owner{"home/nonroot": {UID: 65532, GID: 65532}}}
	var buf bytes.Buffer
	if err := tarTree(&buf, rootfs, spec); err != nil {
		t.Fatal(err)
	}

	want := map[string]tar.Header{
		"home/":          {Mode: 0o755, Uid: 0},
		"home/nonroot/":  {Mode: 0o700, Uid: 65532},
		"home/nonroot/f": {Mode: 0o600, Uid: 65532},
		"tmp/":           {Mode: 0o1777, Uid: 0},
		"sh":             {Mode: 0o777, Uid: 0, Linkname: "busybox"},
	}
	tr := tar.NewReader(&buf)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		w, ok := want[hdr.Name]
		if !ok {
			t.Errorf("unexpected entry %s", hdr.Name)
			continue
		}
		if hdr.Mode != w.Mode || hdr.Uid != w.Uid || hdr.Linkname != w.Linkname || !hdr.ModTime.Equal(epoch) {
			t.Errorf("%s: mode %o uid %d link %q mtime %v; want mode %o uid %d link %q",
				hdr.Name, hdr.Mode, hdr.Uid, hdr.Linkname, hdr.ModTime, w.Mode, w.Uid, w.Linkname)
		}
		delete(want, hdr.Name)
	}
	if len(want) != 0 {
		t.Errorf("missing entries: %v", want)
	}
}
