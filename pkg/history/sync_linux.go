package history

import (
	"os"
	"syscall"
)

// fdatasync writes a file's data to the disk, without its times.
func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
