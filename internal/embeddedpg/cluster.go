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
// loads the superuser password.
func (s *Server) ensureCluster(ctx context.Context) error {
	_, verErr := os.Stat(filepath.Join(s.pgdata, "PG_VERSION"))
	pw, pwErr := readPassword(s.dataDir)
	switch {
	case verErr == nil && pwErr == nil:
		s.password = pw
		return nil
	case verErr == nil:
		return fmt.Errorf("%s holds a cluster but its password file is unusable (%v); "+
			"remove %s to start afresh", s.pgdata, pwErr, s.dataDir)
	case !errors.Is(verErr, fs.ErrNotExist):
		return verErr
	}
	return s.initdb(ctx)
}

func (s *Server) initdb(ctx context.Context) error {
	s.logger.Info("initializing cluster (initdb)", "bindir", filepath.Dir(s.bins.initdb))
	// Anything in pgdata without PG_VERSION is what an interrupted initdb left.
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
