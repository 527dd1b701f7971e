package embeddedpg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ensureCluster runs initdb unless the folder already holds a cluster, and
// loads the superuser password. A cluster that a first start left unfinished
// (see unfinishedCluster) is made again.
func (s *Server) ensureCluster(ctx context.Context) error {
	_, verErr := os.Stat(filepath.Join(s.pgdata, "PG_VERSION"))
	pw, pwErr := readPassword(s.dataDir)
	switch {
	case verErr == nil && pwErr == nil:
		s.password = pw
		return nil
	case verErr == nil && errors.Is(pwErr, fs.ErrNotExist):
		unfinished, err := unfinishedCluster(s.pgdata)
		if err != nil {
			return fmt.Errorf("check cluster %s: %w", s.pgdata, err)
		}
		if !unfinished {
			return fmt.Errorf("%s holds a cluster that has been used, but its password file %s is missing; "+
				"restore it, or remove %s to start afresh", s.pgdata, filepath.Join(s.dataDir, passwordName), s.dataDir)
		}
		s.logger.Warn("the first start on this folder was interrupted before the cluster was finished: making it again",
			"pgdata", s.pgdata)
	case verErr == nil:
		return fmt.Errorf("%s holds a cluster but its password file is unusable (%v); "+
			"remove %s to start afresh", s.pgdata, pwErr, s.dataDir)
	case !errors.Is(verErr, fs.ErrNotExist):
		return verErr
	}
	return s.initdb(ctx)
}

// neverServedMarks are files that a cluster which has ever held data has, or
// had: every postmaster writes postmaster.opts when it starts; a restored base
// backup brings backup_label (and perhaps a manifest and a signal file) until
// its first start; every start of ours writes confName before pg_ctl runs.
var neverServedMarks = []string{"postmaster.opts", "backup_label", "backup_manifest",
	"recovery.signal", "standby.signal", confName}

// unfinishedCluster reports whether pgdata, which has PG_VERSION while the
// password file is missing, is a cluster that a first start left unfinished:
// initdb ran, to its end or not, but the start ended (a cancelled context, a
// Ctrl-C, a killed process) before it wrote the password file, which marks a
// finished cluster. Such a cluster has none of neverServedMarks: no server
// has ever run on it, so it holds only what initdb wrote, and making it again
// loses nothing. A cluster with any of them is never touched.
func unfinishedCluster(pgdata string) (bool, error) {
	for _, name := range neverServedMarks {
		_, err := os.Lstat(filepath.Join(pgdata, name))
		if err == nil {
			return false, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return false, err
		}
	}
	return true, nil
}

func (s *Server) initdb(ctx context.Context) error {
	s.logger.Info("initializing cluster (initdb)", "bindir", filepath.Dir(s.bins.initdb))
	// A killed initdb leaves its bootstrap backend behind for a moment: let
	// it exit before its folder is removed.
	if orphans, err := s.waitClusterProcesses(ctx); err != nil {
		return fmt.Errorf("initdb: %w", err)
	} else if len(orphans) > 0 {
		return fmt.Errorf("initdb: processes %v still use %s", orphans, s.pgdata)
	}
	// What is in pgdata is what an interrupted initdb left: no PG_VERSION,
	// or an unfinished cluster (ensureCluster).
	if err := os.RemoveAll(s.pgdata); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	if err := os.Mkdir(s.pgdata, 0o700); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	if err := s.runAs.chown(s.pgdata); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}

	pw, err := newPassword()
	if err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	// initdb reads the password from a file, which must be readable by the
	// server account; the permanent password file stays with the caller.
	pwFile := filepath.Join(s.dataDir, "initdb-pwfile")
	if err := os.WriteFile(pwFile, []byte(pw+"\n"), 0o600); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	defer os.Remove(pwFile)
	if err := s.runAs.chown(pwFile); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}

	var out string
	for _, locale := range []string{"C.UTF-8", "C"} {
		out, err = s.runCmd(ctx, s.bins.initdb,
			"-D", s.pgdata,
			"--username="+Superuser,
			"--pwfile="+pwFile,
			"--auth=scram-sha-256",
			"--encoding=UTF8",
			"--locale="+locale,
		)
		if err == nil || !strings.Contains(out, "locale") || ctx.Err() != nil {
			break
		}
		s.logger.Info("initdb failed with locale, retrying", "locale", locale, "output", out)
	}
	if err != nil {
		return cmdError("initdb", err, out)
	}

	include := "\n# Added by embeddedpg; embeddedpg.conf is rewritten at every start.\n" +
		"include_if_exists = '" + confName + "'\n"
	if err := appendFile(filepath.Join(s.pgdata, "postgresql.conf"), include); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	// Written last: a password file next to PG_VERSION marks a complete cluster.
	if err := writeFileAtomic(filepath.Join(s.dataDir, passwordName), []byte(pw+"\n"), 0o600); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	s.password = pw
	return nil
}

func readPassword(dataDir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dataDir, passwordName))
	if err != nil {
		return "", err
	}
	pw := strings.TrimSpace(string(data))
	if pw == "" {
		return "", fmt.Errorf("%s is empty", filepath.Join(dataDir, passwordName))
	}
	return pw, nil
}

func newPassword() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
