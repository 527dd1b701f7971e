package projections

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/evchat/evchat/domain"
)

// UsernameKeyVersion is the version of domain.NormalizeUsername the
// projection writes into users.key_version: 0 was lower case, 1 is NFKC
// with case folding.
const UsernameKeyVersion = 1

// DB is the narrow interface of a pool or a transaction.
type DB interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

const staleUsernameKeys = `SELECT id, username FROM users WHERE key_version < $1 ORDER BY id LIMIT $2`

const rekeyUsername = `UPDATE users SET username_key = $2, key_version = $3 WHERE id = $1`

// RekeyUsernames recomputes the username key of the users projected before
// the current key (migrations/readmodel/0005): the key is Unicode case
// folding, which SQL cannot compute, so a migration cannot. db finds the
// read model through its search path. It returns how many users it
// re-keyed; with nothing to do it costs one indexed query.
func RekeyUsernames(ctx context.Context, db DB) (int, error) {
	const batch = 1000
	total := 0
	for {
		rows, err := db.Query(ctx, staleUsernameKeys, UsernameKeyVersion, batch)
		if err != nil {
			return total, fmt.Errorf("rekey usernames: %w", err)
		}
		type user struct {
			id   int64
			name string
		}
		users, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (user, error) {
			var u user
			return u, r.Scan(&u.id, &u.name)
		})
		if err != nil {
			return total, fmt.Errorf("rekey usernames: %w", err)
		}
		for _, u := range users {
			if _, err := db.Exec(ctx, rekeyUsername, u.id, domain.NormalizeUsername(u.name), UsernameKeyVersion); err != nil {
				return total, fmt.Errorf("rekey username of user %d: %w", u.id, err)
			}
		}
		total += len(users)
		if len(users) < batch {
			return total, nil
		}
	}
}
