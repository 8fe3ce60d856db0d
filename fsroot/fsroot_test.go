package fsroot

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// tree makes a root folder with a secret file next to it, outside the root,
// and symlinks inside that point at the secret and at the node's root.
func tree(t *testing.T) (root, secret string) {
	t.Helper()
	base := t.TempDir()
	root = filepath.Join(base, "root")
	secret = filepath.Join(base, "secret")

	mustWrite(t, secret, "node secret\n")
	mustWrite(t, filepath.Join(root, "etc", "app.conf"), "a=1\r\nb=2")
	mustWrite(t, filepath.Join(root, "etc", "shadow"), "container shadow\n")
	mustSymlink(t, "/etc/shadow", filepath.Join(root, "d", "shadow"))
	mustSymlink(t, "../../..", filepath.Join(root, "d", "up"))
	mustSymlink(t, "/", filepath.Join(root, "slash"))
	mustSymlink(t, "../secret", filepath.Join(root, "out"))
	return root, secret
}

func mustWrite(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
}

func mustSymlink(t *testing.T, target, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

func openRoot(t *testing.T, dir string) *Root {
	t.Helper()
	r, err := Open(dir, "test root")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestReadFileStaysInRoot(t *testing.T) {
	root, _ := tree(t)
	r := openRoot(t, root)

	tests := []struct {
		path string
		want string
	}{
		{path: "/etc/app.conf", want: "a=1\r\nb=2"},
		{path: "/d/shadow", want: "container shadow\n"},
		{path: "/d/up/etc/shadow", want: "container shadow\n"},
		{path: "/slash/slash/etc/shadow", want: "container shadow\n"},
		{path: "../../../etc/shadow", want: "container shadow\n"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			f, err := r.ReadFile(tt.path, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if string(f.Content) != tt.want {
				t.Fatalf("read %q, want %q", f.Content, tt.want)
			}
		})
	}
}

func TestReadFileRefusesEscapesAndFolders(t *testing.T) {
	root, _ := tree(t)
	r := openRoot(t, root)

	if _, err := r.ReadFile("/out", 1<<20); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a symlink to a file outside the root must resolve inside it and not exist, got %v", err)
	}
	if _, err := r.ReadFile("/etc", 1<<20); !errors.Is(err, ErrNotFile) {
		t.Fatalf("want ErrNotFile for a folder, got %v", err)
	}
	if _, err := r.ReadFile("/etc/app.conf", 3); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("want ErrTooLarge, got %v", err)
	}
}

type entry struct {
	Name, Link string
	Type       byte
	Body       string
}

func readTar(t *testing.T, data []byte) []entry {
	t.Helper()
	var out []entry
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		out = append(out, entry{Name: hdr.Name, Link: hdr.Linkname, Type: hdr.Typeflag, Body: string(body)})
	}
}

func TestPackKeepsSymlinksAsLinks(t *testing.T) {
	root, _ := tree(t)
	mustWrite(t, filepath.Join(root, "d", "file\xff"), "x")
	r := openRoot(t, root)

	var buf bytes.Buffer
	if _, err := r.Pack(&buf, "/slash/d"); err != nil {
		t.Fatal(err)
	}

	want := []entry{
		{Name: "d/", Type: tar.TypeDir},
		{Name: "d/file\xff", Type: tar.TypeReg, Body: "x"},
		{Name: "d/shadow", Type: tar.TypeSymlink, Link: "/etc/shadow"},
		{Name: "d/up", Type: tar.TypeSymlink, Link: "../../.."},
	}
	if diff := cmp.Diff(want, readTar(t, buf.Bytes())); diff != "" {
		t.Fatalf("tar entries (-want +got):\n%s", diff)
	}
}

func TestEntryPath(t *testing.T) {
	tests := []struct {
		name, rename, want string
		escapes            bool
	}{
		{name: "d/f", want: "d/f"},
		{name: "d/", rename: "new", want: "new"},
		{name: "d/x/y", rename: "new", want: "new/x/y"},
		{name: "./d", want: "d"},
		{name: "../x", escapes: true},
		{name: "d/../../x", escapes: true},
		{name: "/etc/passwd", escapes: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EntryPath(tt.name, tt.rename)
			if tt.escapes {
				if !errors.Is(err, ErrEscapes) {
					t.Fatalf("want ErrEscapes, got %q, %v", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestUnpackRoundTripAndRefusesEscapes(t *testing.T) {
	root, secret := tree(t)
	r := openRoot(t, root)

	var buf bytes.Buffer
	if _, err := r.Pack(&buf, "/d"); err != nil {
		t.Fatal(err)
	}
	dst, err := r.Destination("/slash/copy")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Unpack(&buf, dst, UnpackOptions{}); err != nil {
		t.Fatal(err)
	}
	if link, err := os.Readlink(filepath.Join(root, "copy", "up")); err != nil || link != "../../.." {
		t.Fatalf("copied link = %q, %v", link, err)
	}

	var evil bytes.Buffer
	tw := tar.NewWriter(&evil)
	_ = tw.WriteHeader(&tar.Header{Name: "e/", Typeflag: tar.TypeDir, Mode: 0o755})
	_ = tw.WriteHeader(&tar.Header{Name: "e/l", Typeflag: tar.TypeSymlink, Linkname: "../.."})
	_ = tw.WriteHeader(&tar.Header{Name: "e/l/secret", Typeflag: tar.TypeReg, Mode: 0o644, Size: 4})
	_, _ = tw.Write([]byte("evil"))
	_ = tw.Close()

	_, err = r.Unpack(&evil, Destination{Dir: "/d"}, UnpackOptions{})
	if !errors.Is(err, ErrEscapes) {
		t.Fatalf("want ErrEscapes, got %v", err)
	}
	if data, _ := os.ReadFile(secret); string(data) != "node secret\n" {
		t.Fatalf("the file outside the root changed: %q", data)
	}
}

func TestWriteFileKeepsModeAndRefusesChanged(t *testing.T) {
	root, _ := tree(t)
	r := openRoot(t, root)

	f, err := r.ReadFile("/etc/app.conf", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.WriteFile("/etc/app.conf", []byte("a=2\r\nb=2"), f.SHA256); err != nil {
		t.Fatal(err)
	}

	info, err := os.Stat(filepath.Join(root, "etc", "app.conf"))
	if err != nil || info.Mode().Perm() != 0o640 {
		t.Fatalf("mode after write: %v, %v", info, err)
	}
	if _, err := r.WriteFile("/etc/app.conf", []byte("lost"), f.SHA256); !errors.Is(err, ErrChanged) {
		t.Fatalf("want ErrChanged on a stale hash, got %v", err)
	}
}

func TestUnpackKeepsModificationTimes(t *testing.T) {
	root, _ := tree(t)
	r := openRoot(t, root)
	changed := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_ = tw.WriteHeader(&tar.Header{Name: "old.log", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3, ModTime: changed})
	_, _ = tw.Write([]byte("abc"))
	_ = tw.Close()

	if _, err := r.Unpack(&buf, Destination{Dir: "/d"}, UnpackOptions{}); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(root, "d", "old.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !info.ModTime().Equal(changed) {
		t.Fatalf("modification time = %s, want %s", info.ModTime().UTC(), changed)
	}
}
