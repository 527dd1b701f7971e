package realtime

import "time"

// Defaults of the hub's limits; the composition root's configuration
// (chatd.DefaultConfig) starts from them.
const (
	// DefaultResumeMax is the number of a room's events a resume may be
	// behind before it is refused as too old (Config.ResumeMax).
	DefaultResumeMax = 1000
	// DefaultPerUser and DefaultMax bound the connections of one user and
	// of one process (Config.PerUser, Config.Max).
	DefaultPerUser = 16
	DefaultMax     = 10_000
	// DefaultTypingInterval is how often one user's typing notices reach a
	// room (Config.TypingInterval).
	DefaultTypingInterval = 2 * time.Second
)
