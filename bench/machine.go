package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
)

// machine describes where a run happened: its numbers mean little without it.
type machine struct {
	Cores     int    `json:"cores"`
	CPU       string `json:"cpu"`
	GoVersion string `json:"go_version"`
	GOOS      string `json:"goos"`
	GOARCH    string `json:"goarch"`
	Disk      string `json:"disk"` // the filesystem holding the server's store and the databases
}

func describeMachine(dir string) machine {
	return machine{
		Cores: runtime.NumCPU(), CPU: cpuModel(), GoVersion: runtime.Version(),
		GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, Disk: describeDisk(dir),
	}
}

// cpuModel reads the model name from /proc/cpuinfo.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// describeDisk names dir's filesystem (device and type, from /proc/mounts) and its size, df -hT
// style.
func describeDisk(dir string) string {
	var st syscall.Statfs_t
	size := ""
	if err := syscall.Statfs(dir, &st); err == nil {
		total := float64(st.Blocks) * float64(st.Bsize)
		free := float64(st.Bavail) * float64(st.Bsize)
		size = fmt.Sprintf(", %.0f GiB, %.0f GiB free", total/(1<<30), free/(1<<30))
	}
	dev, fstype, mnt := "?", "?", ""
	if abs, err := filepath.EvalSymlinks(dir); err == nil {
		dir = abs
	}
	if f, err := os.Open("/proc/mounts"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 3 {
				continue
			}
			p := fields[1]
			under := dir == p || strings.HasPrefix(dir, strings.TrimSuffix(p, "/")+"/")
			if under && len(p) >= len(mnt) { // the longest mount point holding dir
				dev, mnt, fstype = fields[0], p, fields[2]
			}
		}
	}
	return fmt.Sprintf("%s in %s (%s on %s%s)", dir, mnt, fstype, dev, size)
}
