// Package archtest checks the layout rules of ../shared/DESIGN.md and issue 11
// that no compiler enforces: which areas may import which, which binaries
// may link cgo, and how long a function in the core packages may grow
// before it must say why.
package archtest

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/posgate/posgate"

// root is the module's root, two folders above this package.
func root(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("module root not found from %s: %v", dir, err)
	}
	return dir
}

// goList runs `go list -json` with args in the module root and decodes the
// package stream.
func goList(t *testing.T, args ...string) []listedPackage {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-json"}, args...)...)
	cmd.Dir = root(t)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("go list %v: %v\n%s", args, err, errb.String())
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(&out)
	for dec.More() {
		var p listedPackage
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

type listedPackage struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
	CgoFiles     []string
}

// TestDevicectlLinksNoCgo pins that the field engineer's CLI stays a small,
// static binary: no PKCS#11 binding, no bbolt, no QUIC, no cgo anywhere in
// its dependencies (issue 11).
func TestDevicectlLinksNoCgo(t *testing.T) {
	forbidden := []string{"github.com/miekg/pkcs11", "go.etcd.io/bbolt", "github.com/quic-go/quic-go"}
	for _, p := range goList(t, "-deps", "./cmd/devicectl") {
		for _, f := range forbidden {
			if p.ImportPath == f || strings.HasPrefix(p.ImportPath, f+"/") {
				t.Errorf("devicectl depends on %s", p.ImportPath)
			}
		}
		if len(p.CgoFiles) > 0 && p.ImportPath != "runtime/cgo" && strings.HasPrefix(p.ImportPath, module) {
			t.Errorf("devicectl depends on cgo package %s", p.ImportPath)
		}
	}
}

// TestImportDirection pins DESIGN.md's import rules: nothing imports cmd,
// cloud and gateway never import each other, the lower areas import neither,
// and only the named packages import the PKCS#11 binding and bbolt.
func TestImportDirection(t *testing.T) {
	area := func(path string) string {
		rest := strings.TrimPrefix(path, module+"/")
		if rest == path {
			return ""
		}
		return strings.SplitN(rest, "/", 2)[0]
	}
	upper := map[string]bool{"cmd": true, "gateway": true, "cloud": true, "firmware-sim": true}
	for _, p := range goList(t, "./...") {
		from := area(p.ImportPath)
		imports := append(append(append([]string{}, p.Imports...), p.TestImports...), p.XTestImports...)
		for _, imp := range imports {
			to := area(imp)
			switch {
			case to == "cmd" && from != "cmd":
				t.Errorf("%s imports %s: nothing outside cmd/ imports cmd", p.ImportPath, imp)
			case from == "cloud" && to == "gateway", from == "gateway" && to == "cloud":
				t.Errorf("%s imports %s: cloud and gateway never import each other", p.ImportPath, imp)
			case !upper[from] && from != "" && upper[to]:
				t.Errorf("%s imports %s: %s/ may not import %s/", p.ImportPath, imp, from, to)
			}
			if imp == "github.com/miekg/pkcs11" && area(p.ImportPath) != "hsm" {
				t.Errorf("%s imports the PKCS#11 binding: only hsm/ does", p.ImportPath)
			}
			if imp == "go.etcd.io/bbolt" && area(p.ImportPath) != "offline" {
				t.Errorf("%s imports bbolt: only offline/ does", p.ImportPath)
			}
			if from == "cloud" && to == "offline" && slices.Contains(p.Imports, imp) {
				// offline/ is the gateway's store; a format both ends
				// speak lives under protocol/. (A cross-end test may
				// open a gateway store to check both ends agree.)
				t.Errorf("%s imports %s: the center does not use the gateway's store", p.ImportPath, imp)
			}
		}
	}
}

// TestKeyCustodianToolNeedsNoSimulator pins that hsmctl, which runs at a
// key ceremony, takes the key-bundle format from p2pe/ and not from the
// terminal simulator.
func TestKeyCustodianToolNeedsNoSimulator(t *testing.T) {
	for _, p := range goList(t, "-deps", "./cmd/hsmctl") {
		if strings.HasPrefix(p.ImportPath, module+"/firmware-sim") {
			t.Errorf("hsmctl depends on the simulator package %s", p.ImportPath)
		}
	}
}

// maxFuncLines is the length past which a function in the core packages
// must carry a comment saying why it is long (issue 11: "~80 lines").
const maxFuncLines = 80

// saysWhyLong matches the comment that says why a function is long: "…
// is one function of about 90 lines on purpose: …", "long because …" or
// "long: …".
var saysWhyLong = regexp.MustCompile(`(?i)lines on purpose|long because|long:`)

// TestLongFunctionsSayWhy pins that no function in gateway/, cloud/authz or
// cloud/store grows past maxFuncLines without a comment saying why
// (saysWhyLong), in its doc comment or in its first lines.
func TestLongFunctionsSayWhy(t *testing.T) {
	base := root(t)
	for _, dir := range []string{"gateway", "cloud/authz", "cloud/store"} {
		err := filepath.WalkDir(filepath.Join(base, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
			if err != nil {
				return err
			}
			for _, decl := range f.Decls {
				fn, ok := decl.(*ast.FuncDecl)
				if !ok || fn.Body == nil {
					continue
				}
				lines := fset.Position(fn.End()).Line - fset.Position(fn.Pos()).Line + 1
				if lines <= maxFuncLines || saysWhy(fset, f, fn) {
					continue
				}
				rel, _ := filepath.Rel(base, path)
				t.Errorf("%s:%d: %s is %d lines (over %d) with no comment saying why (%v)",
					rel, fset.Position(fn.Pos()).Line, fn.Name.Name, lines, maxFuncLines, saysWhyLong)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// saysWhy reports whether fn's doc comment, or a comment in its first three
// lines, matches saysWhyLong.
func saysWhy(fset *token.FileSet, f *ast.File, fn *ast.FuncDecl) bool {
	if fn.Doc != nil && saysWhyLong.MatchString(fn.Doc.Text()) {
		return true
	}
	start := fset.Position(fn.Body.Lbrace).Line
	for _, cg := range f.Comments {
		l := fset.Position(cg.Pos()).Line
		if l >= start && l <= start+3 && saysWhyLong.MatchString(cg.Text()) {
			return true
		}
	}
	return false
}
