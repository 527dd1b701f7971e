//go:build unix

package embeddedpg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/evchat/evchat/internal/wait"
)

// account is the unprivileged user the PostgreSQL programs run as when this
// process is root. A nil *account means the current user; its methods are
// then no-ops.
type account struct {
	name     string
	uid, gid uint32
}

// serverAccount picks the account to run PostgreSQL as: nil (the current
// user) unless running as root; then the non-root owner of an existing
// pgdata, else the "postgres" user, else "nobody".
func serverAccount(pgdata string) (*account, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	if fi, err := os.Stat(pgdata); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
			name := strconv.FormatUint(uint64(st.Uid), 10)
			if u, err := user.LookupId(name); err == nil {
				name = u.Username
			}
			return &account{name: name, uid: st.Uid, gid: st.Gid}, nil
		}
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil || uid == 0 {
			continue
		}
		return &account{name: name, uid: uint32(uid), gid: uint32(gid)}, nil
	}
	return nil, errors.New(`running as root, and neither a "postgres" nor a "nobody" user exists to run PostgreSQL as`)
}

func (a *account) sysProcAttr() *syscall.SysProcAttr {
	if a == nil {
		return nil
	}
	return &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: a.uid, Gid: a.gid, Groups: []uint32{}},
	}
}

func (a *account) chown(path string) error {
	if a == nil {
		return nil
	}
	if err := os.Lchown(path, int(a.uid), int(a.gid)); err != nil {
		return fmt.Errorf("hand %s to user %s: %w", path, a.name, err)
	}
	return nil
}

// chownTree gives the account everything under root that it does not own yet.
func (a *account) chownTree(root string) error {
	if a == nil {
		return nil
	}
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // a file the server removed meanwhile
			}
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid == a.uid && st.Gid == a.gid {
			return nil
		}
		return a.chown(path)
	})
}

// makeTraversable adds o+x to dir and each of its parents (but /) lacking it,
// so that the server account can reach dir.
func makeTraversable(logger *slog.Logger, dir string) error {
	for d := filepath.Clean(dir); d != filepath.Dir(d); d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 != 0 {
			continue
		}
		mode := fi.Mode().Perm() | 0o001
		if err := os.Chmod(d, mode); err != nil {
			return fmt.Errorf("make %s traversable for the server account: %w", d, err)
		}
		logger.Info("made folder traversable for the postgres server account", "path", d, "mode", mode)
	}
	return nil
}

// lockDir takes an exclusive lock on dir/lock, waiting for other processes,
// and returns the function that releases it.
func lockDir(ctx context.Context, dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data folder: %w", err)
	}
	fd := int(f.Fd())
	for {
		err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(fd, syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock data folder: %w", err)
		}
		if err := wait.Sleep(ctx, 50*time.Millisecond); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock data folder: %w", err)
		}
	}
}

// postgresAlive reports whether pid is a running (not zombie) process and,
// where /proc tells, a postgres whose working folder is pgdata (postgres
// processes chdir to their data folder). This guards against PID reuse.
func postgresAlive(pid int, pgdata string) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		return true // no procfs: trust kill(2)
	}
	alive, cwd := procInfo(pid)
	if !alive {
		return false
	}
	if cwd == "" {
		return true // unreadable: assume it is ours
	}
	return sameDir(cwd, pgdata)
}

// clusterProcesses lists the live postgres processes whose working folder is
// pgdata: backends of a killed postmaster that have not exited yet. Empty
// without procfs.
func clusterProcesses(pgdata string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || !strings.HasPrefix(string(comm), "postgres") {
			continue
		}
		if alive, cwd := procInfo(pid); alive && cwd != "" && sameDir(cwd, pgdata) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procInfo reads /proc/PID: whether the process exists and is not a zombie,
// and its working folder ("" when unreadable).
func procInfo(pid int) (alive bool, cwd string) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false, ""
	}
	// The state follows the parenthesised command name, which may contain ')'.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		if s := stat[i+2]; s == 'Z' || s == 'X' || s == 'x' {
			return false, ""
		}
	}
	cwd, _ = os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	return true, cwd
}

func sameDir(a, b string) bool {
	ra, err := filepath.EvalSymlinks(a)
	if err != nil {
		ra = a
	}
	rb, err := filepath.EvalSymlinks(b)
	if err != nil {
		rb = b
	}
	return filepath.Clean(ra) == filepath.Clean(rb)
}
