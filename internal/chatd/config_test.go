package chatd

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// A server told nothing runs on DefaultConfig, and a shorter
// ProjectionWait shortens the id sequences' wait with it (as tests rely on).
func TestConfigDefaults(t *testing.T) {
	want := DefaultConfig()
	want.JWTKeyFile = filepath.Join(want.DataDir, "jwt-ed25519.pem")
	if got := (Config{}).withDefaults(); !reflect.DeepEqual(got, want) {
		t.Errorf("zero Config with defaults = %+v; want %+v", got, want)
	}
	if got := (Config{ProjectionWait: time.Second}).withDefaults(); got.IDsWait != time.Second || got.ProjectionWait != time.Second {
		t.Errorf("ProjectionWait 1s gives IDsWait %v, ProjectionWait %v; want both 1s", got.IDsWait, got.ProjectionWait)
	}
	if got := DefaultConfig().withDefaults(); got.IDsWait != DefaultConfig().IDsWait {
		t.Errorf("DefaultConfig's IDsWait became %v", got.IDsWait)
	}
}
