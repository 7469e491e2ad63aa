// Package vectors reads the known-answer files under the repository's
// testdata/vectors folder for the p2pe tests.
//
// A file is a list of records separated by blank lines; each record is a set
// of "NAME = value" lines; a line starting with '#' is a comment. Values are
// kept as written (hex stays hex). The package is for tests only.
package vectors

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Record is one block of NAME = value lines.
type Record map[string]string

// Has reports whether the record defines name.
func (r Record) Has(name string) bool {
	_, ok := r[name]
	return ok
}

// Str returns the value of name and fails the test when it is missing.
func (r Record) Str(t testing.TB, name string) string {
	t.Helper()
	v, ok := r[name]
	if !ok {
		t.Fatalf("vector record has no %s", name)
	}
	return v
}

// Hex returns the hex-decoded value of name and fails the test when it is
// missing or not hex.
func (r Record) Hex(t testing.TB, name string) []byte {
	t.Helper()
	b, err := hex.DecodeString(r.Str(t, name))
	if err != nil {
		t.Fatalf("vector %s is not hex: %v", name, err)
	}
	return b
}

// Path returns the absolute path of testdata/vectors/name, found by walking
// up from the working directory to the directory holding go.mod.
func Path(name string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("locate vectors: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "testdata", "vectors", name), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("locate vectors: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Parse reads records from the text of a vector file.
func Parse(text string) ([]Record, error) {
	var recs []Record
	cur := Record{}
	flush := func() {
		if len(cur) > 0 {
			recs = append(recs, cur)
			cur = Record{}
		}
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
			flush()
			continue
		case strings.HasPrefix(line, "#"):
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %d: want NAME = value", n)
		}
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if name == "" {
			return nil, fmt.Errorf("line %d: empty name", n)
		}
		if _, dup := cur[name]; dup {
			return nil, fmt.Errorf("line %d: %s given twice in one record", n, name)
		}
		cur[name] = value
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read vectors: %w", err)
	}
	flush()
	return recs, nil
}

// Load reads testdata/vectors/name and fails the test if it cannot, or if
// the file holds no records.
func Load(t testing.TB, name string) []Record {
	t.Helper()
	p, err := Path(name)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read vectors: %v", err)
	}
	recs, err := Parse(string(b))
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	if len(recs) == 0 {
		t.Fatalf("%s holds no records", name)
	}
	return recs
}
