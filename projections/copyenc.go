package projections

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// copyRows is a COPY in PostgreSQL's binary format, encoded as the rows are
// made: a bulk load then costs no value boxing, no per-value encode plan and
// no second pass over the rows. Each method appends one field of the current
// row; a row begins with row. Each method writes one column type (int8 a
// bigint, jsonb a jsonb...): a column of another type makes the server
// refuse the COPY, so a migration that changes a type must change the rows.
type copyRows struct {
	buf  bytes.Buffer
	rows int
}

// pgEpochMicros is the zero of PostgreSQL's timestamps, 2000-01-01 UTC, in
// microseconds since the Unix epoch.
const pgEpochMicros = 946_684_800 * 1_000_000

// int8OID is the type of bigint[] elements.
const int8OID = 20

func (c *copyRows) header() {
	if c.buf.Len() == 0 {
		c.buf.WriteString("PGCOPY\n\xff\r\n\x00")
		c.buf.Write(make([]byte, 8)) // flags, header extension length
	}
}

func (c *copyRows) u16(v uint16) {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	c.buf.Write(b[:])
}

func (c *copyRows) u32(v uint32) {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	c.buf.Write(b[:])
}

func (c *copyRows) u64(v uint64) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	c.buf.Write(b[:])
}

// row starts a row of n fields.
func (c *copyRows) row(n int) {
	c.header()
	c.u16(uint16(n))
	c.rows++
}

func (c *copyRows) null() { c.u32(math.MaxUint32) } // length -1

func (c *copyRows) int8(v int64) {
	c.u32(8)
	c.u64(uint64(v))
}

// int8OrNull writes v, or NULL when v is nil.
func (c *copyRows) int8OrNull(v *int64) {
	if v == nil {
		c.null()
		return
	}
	c.int8(*v)
}

func (c *copyRows) bool(v bool) {
	c.u32(1)
	if v {
		c.buf.WriteByte(1)
	} else {
		c.buf.WriteByte(0)
	}
}

// text writes s, which must be valid UTF-8 (the server checks it).
func (c *copyRows) text(s string) {
	c.u32(uint32(len(s)))
	c.buf.WriteString(s)
}

// jsonb writes a JSON document, or NULL when doc is nil.
func (c *copyRows) jsonb(doc []byte) {
	if doc == nil {
		c.null()
		return
	}
	c.u32(uint32(len(doc) + 1))
	c.buf.WriteByte(1) // jsonb's binary format version
	c.buf.Write(doc)
}

// timestamptz writes t to the microsecond (PostgreSQL's resolution; the
// projection's times are truncated to it already).
func (c *copyRows) timestamptz(t time.Time) {
	c.int8(t.Unix()*1_000_000 + int64(t.Nanosecond()/1000) - pgEpochMicros)
}

// int8Array writes a one-dimensional bigint[] without NULLs.
func (c *copyRows) int8Array(vs []int64) {
	if len(vs) == 0 {
		c.u32(12)
		c.u32(0) // dimensions
		c.u32(0) // no NULLs
		c.u32(int8OID)
		return
	}
	c.u32(uint32(20 + 12*len(vs)))
	c.u32(1) // dimensions
	c.u32(0) // no NULLs
	c.u32(int8OID)
	c.u32(uint32(len(vs))) // length
	c.u32(1)               // lower bound
	for _, v := range vs {
		c.int8(v)
	}
}

// copyTo loads the rows into table (columns in the order the rows give
// them) on tx's connection.
func (c *copyRows) copyTo(ctx context.Context, tx pgx.Tx, table pgx.Identifier, columns []string) error {
	if c.rows == 0 {
		return nil
	}
	cols := make([]string, len(columns))
	for i, col := range columns {
		cols[i] = pgx.Identifier{col}.Sanitize()
	}
	c.u16(math.MaxUint16) // trailer: -1
	_, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(c.buf.Bytes()),
		`COPY `+table.Sanitize()+` (`+strings.Join(cols, ", ")+`) FROM STDIN (FORMAT binary)`)
	return err
}
