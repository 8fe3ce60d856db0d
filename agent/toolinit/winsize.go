package toolinit

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// WinsizeFlag sets the terminal size before the command starts, for
// runtimes whose exec API has no initial size (CRI Exec): the size comes
// only after the stream is up, often after a short command has run.
const WinsizeFlag = "--winsize="

// ApplyWinsize sets the size of the terminal on stdin from a value such
// as "91x33" (columns x rows). Without a terminal it does nothing.
func ApplyWinsize(value string) error {
	cols, rows, ok := strings.Cut(value, "x")
	if !ok {
		return fmt.Errorf("terminal size %q: want COLUMNSxROWS", value)
	}
	c, err := strconv.ParseUint(cols, 10, 16)
	if err != nil {
		return fmt.Errorf("terminal size %q: %w", value, err)
	}
	r, err := strconv.ParseUint(rows, 10, 16)
	if err != nil {
		return fmt.Errorf("terminal size %q: %w", value, err)
	}

	fd := int(os.Stdin.Fd())
	if _, err := unix.IoctlGetTermios(fd, unix.TCGETS); err != nil {
		return nil
	}
	return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Col: uint16(c), Row: uint16(r)})
}
