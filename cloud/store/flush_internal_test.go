package store

import (
	"strings"
	"testing"
)

func TestFlushStmtsGroupsWritesOnDifferentTables(t *testing.T) {
	w := func(q string, rows int64) deferredWrite {
		return deferredWrite{raw: q, table: writeTarget(q), args: []any{1}, rows: rows, what: q[:12]}
	}
	ws := []deferredWrite{
		w("UPDATE accounts SET balance = ? WHERE id = 1", 1),
		w("INSERT INTO holds (id) VALUES (?)", -1),
		w("UPDATE accounts SET held = ? WHERE id = 2", 1), // same table as the first: a new statement
		w("INSERT INTO authorizations (id) VALUES (?)", -1),
		w("WITH x AS (SELECT 1) INSERT INTO audit (id) SELECT ?", -1), // not a plain write: alone
		w("INSERT INTO audit (id) VALUES (?)", -1),
	}
	fs := flushStmts(ws)
	if len(fs) != 4 {
		t.Fatalf("%d statements, want 4: %+v", len(fs), fs)
	}
	want := []struct {
		args    int
		checked bool
		has     []string
	}{
		{2, true, []string{"w0 AS (UPDATE accounts", "RETURNING 1", "w1 AS (INSERT INTO holds", "(SELECT COUNT(*) FROM w0) = 1", "$2"}},
		{2, true, []string{"w0 AS (UPDATE accounts", "w1 AS (INSERT INTO authorizations"}},
		{1, false, []string{"WITH x AS"}},
		{1, false, []string{"INSERT INTO audit (id) VALUES ($1)"}},
	}
	for i, f := range fs {
		if len(f.args) != want[i].args || f.checked != want[i].checked {
			t.Errorf("statement %d: %d args, checked %v; want %d, %v", i, len(f.args), f.checked, want[i].args, want[i].checked)
		}
		for _, h := range want[i].has {
			if !strings.Contains(f.sql, h) {
				t.Errorf("statement %d %q lacks %q", i, f.sql, h)
			}
		}
	}
	if got := fs[3].sql; strings.HasPrefix(got, "WITH") {
		t.Errorf("a lone unchecked write is sent as it is, got %q", got)
	}
}

func TestWriteTarget(t *testing.T) {
	for q, want := range map[string]string{
		"INSERT INTO holds (id) VALUES (?)":         "holds",
		"INSERT INTO holds(id) VALUES (?)":          "holds",
		"UPDATE accounts SET x = 1":                 "accounts",
		"WITH w AS (SELECT 1) INSERT INTO a SELECT": "",
		"DELETE FROM a":                             "",
	} {
		if got := writeTarget(q); got != want {
			t.Errorf("writeTarget(%q) = %q, want %q", q, got, want)
		}
	}
}
