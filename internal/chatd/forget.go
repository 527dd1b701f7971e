package chatd

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/commands"
	"github.com/evchat/evchat/eventstore"
	chathttp "github.com/evchat/evchat/http"
	"github.com/evchat/evchat/postgres"
	"github.com/evchat/evchat/readmodel"
	"github.com/evchat/evchat/shred"
)

// Forgetter forgets users (the right to be forgotten), for
// DELETE /admin/users/<id>/ and chatctl users forget. In order:
//
//  1. the user's sessions end (every process closes their sockets) and
//     their credential goes: they cannot act while they are forgotten;
//  2. their key is deleted and chat.user_forgotten appended
//     (commands.Service.ForgetUser): from then on the log, and everything
//     that reads it through the shredder, gives placeholders, and the
//     projection rewrites the read model;
//  3. cached plaintext goes: this process's shredder and command state
//     (others drop theirs on the key store's notice), and the snapshots of
//     the rooms they created;
//  4. their attachment files are removed, except those that a message of
//     someone else names (files are named by their content).
//
// Every step is idempotent: a forget that fails half-way is completed by
// running it again.
type Forgetter struct {
	Commands    *commands.Service
	Shred       *shred.Store
	Pool        *pgxpool.Pool
	ReadModel   *readmodel.Store
	Media       *chathttp.FileStorage
	Logger      *slog.Logger
	Now         func() time.Time
	credentials *postgres.Credentials
}

var _ chathttp.Forgetter = (*Forgetter)(nil)

// NewForgetter wires a Forgetter on pool and store, which must be (or
// wrap, through metrics) the shredding store OpenStore returns.
func NewForgetter(pool *pgxpool.Pool, cmds *commands.Service, store *shred.Store, mediaDir string, log *slog.Logger) *Forgetter {
	return &Forgetter{
		Commands: cmds, Shred: store, Pool: pool, ReadModel: readmodel.New(pool),
		Media: &chathttp.FileStorage{Dir: mediaDir}, Logger: log, Now: time.Now,
		credentials: postgres.NewCredentials(pool),
	}
}

// shredKeys forgets a key and drops it from this process's cache at once
// (the notice reaches the other processes).
type shredKeys struct {
	keys  *postgres.UserKeys
	store *shred.Store
}

func (k shredKeys) Forget(ctx context.Context, user int64) error {
	err := k.keys.Forget(ctx, user)
	k.store.Invalidate(user)
	return err
}

// ForgetUser implements chathttp.Forgetter.
func (f *Forgetter) ForgetUser(ctx context.Context, user int64) (chathttp.Forgotten, error) {
	out := chathttp.Forgotten{User: user}
	started := f.Now()
	// The files are listed before the read model forgets them.
	files, err := f.ReadModel.AttachmentsOf(ctx, user)
	if err != nil {
		return out, err
	}
	pg := postgres.NewForgetting(f.Pool)
	if out.SessionsRevoked, err = pg.RevokeSessions(ctx, user); err != nil {
		return out, err
	}
	if err := f.credentials.Delete(ctx, user); err != nil {
		return out, err
	}
	w, err := f.Commands.ForgetUser(ctx, commands.Actor{}, user, shredKeys{keys: postgres.NewUserKeys(f.Pool), store: f.Shred})
	if err != nil {
		return out, err
	}
	out.Position = w.Position.String()
	f.Commands.DropCachedState()
	if err := pg.DeleteSnapshots(ctx, user); err != nil {
		return out, err
	}
	if out.FilesRemoved, err = f.Media.RemoveUnnamed(ctx, files, f.ReadModel.NamedByOthers(user), started); err != nil {
		return out, fmt.Errorf("forget user %d: remove files: %w", user, err)
	}
	f.Logger.Info("user forgotten", "user_id", user, "position", out.Position,
		"sessions_revoked", out.SessionsRevoked, "files_removed", out.FilesRemoved)
	return out, nil
}

// openShredder decorates the configured store with the shredder: every
// reader and writer above it sees plaintext, or placeholders for forgotten
// users, and the log holds personal data sealed and username streams under
// a keyed hash (package shred).
func openShredder(ctx context.Context, cfg Config, inner eventstore.Store, pool *pgxpool.Pool, bus shred.Bus, log *slog.Logger) (*shred.Store, error) {
	secret, err := postgres.StreamSecret(ctx, pool)
	if err != nil {
		return nil, err
	}
	s := shred.New(inner, postgres.NewUserKeys(pool), shred.Options{Logger: log, StreamKey: secret, KeyCreated: cfg.Hooks.KeyCreated})
	if bus != nil {
		s.Listen(bus)
	}
	return s, nil
}

// Shredder is the shredding store under the metrics (for tools and tests:
// its Inner is the log as stored, sealed).
func (m *Main) Shredder() *shred.Store { return m.shred }
