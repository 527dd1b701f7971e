package migrations

import (
	"strings"

	"github.com/jackc/pgx/v5"
)

// Schema is a PostgreSQL schema that holds a read model: the live one
// (ReadModel), or one built beside it by a rebuild or a verification. Every
// read-model schema has the same tables, those the readmodel set creates.
// It lives here, below projections, because Apply creates the live one.
type Schema struct{ name string }

// ReadModel is the schema of the live read model. Servers find its tables
// through the search path (SearchPath), so a rebuilt schema renamed to it
// serves at once.
var ReadModel = Schema{name: "readmodel"}

// Search is the schema of the live search index (the search set): its own
// checkpoints and tables, swapped on their own by a rebuild of the index.
var Search = Schema{name: "search"}

// Name is the schema's name, as stored in catalogs and schema_migrations.
func (s Schema) Name() string { return s.name }

// Ident is the schema's name as a quoted SQL identifier.
func (s Schema) Ident() string { return pgx.Identifier{s.name}.Sanitize() }

// Qualified is table of this schema as a qualified, quoted SQL identifier.
func (s Schema) Qualified(table string) string { return pgx.Identifier{s.name, table}.Sanitize() }

// Identifier is table of this schema as a pgx identifier (for COPY).
func (s Schema) Identifier(table string) pgx.Identifier { return pgx.Identifier{s.name, table} }

// SearchPath is the search_path that finds this schema's tables by their
// bare names, and the core tables after them.
func (s Schema) SearchPath() string { return s.Ident() + ", public" }

// Beside returns the schema of a read model built next to this one, named
// after it with the suffix ("readmodel_rebuild").
func (s Schema) Beside(suffix string) Schema { return Schema{name: s.name + "_" + suffix} }

// Table is a read-model table and the columns that order its rows (its
// primary key), by which a verification compares two read models.
type Table struct {
	Name string
	Key  []string
}

// OrderBy is the table's key as a comma-separated column list.
func (t Table) OrderBy() string { return strings.Join(t.Key, ", ") }

// CheckpointsTable holds the projections' positions in each read-model
// schema, so that a rebuilt model and its checkpoint are swapped in
// together. It is not a projected table: Tables does not list it.
const CheckpointsTable = "checkpoints"

// Tables returns the projected tables of a read-model schema, in the order
// verifications report them. It is the one list of them: rebuilds analyze
// and lock these, verifications compare these, and a test checks that the
// readmodel set creates exactly these and CheckpointsTable.
func (Schema) Tables() []Table {
	return []Table{
		{Name: "users", Key: []string{"id"}},
		{Name: "conversations", Key: []string{"id"}},
		{Name: "members", Key: []string{"conversation_id", "user_id"}},
		{Name: "messages", Key: []string{"id"}},
		{Name: "attachments", Key: []string{"key", "conversation_id"}},
		{Name: "message_edits", Key: []string{"message_id", "commit_pos", "prepare_pos"}},
		{Name: "reactions", Key: []string{"message_id", "emoji", "user_id"}},
		{Name: "past_members", Key: []string{"user_id", "conversation_id"}},
	}
}
