package cli_test

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"

	"github.com/posgate/posgate/cmd/internal/cli"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name              string
		args              []string
		wantErr           error
		wantOut, wantErr2 string // substrings of stdout and stderr; "" means empty
	}{
		{"help_long", []string{"--help"}, flag.ErrHelp, "-config", ""},
		{"help_short", []string{"-h"}, flag.ErrHelp, "-config", ""},
		{"bad_flag", []string{"--nope"}, nil, "", "flag provided but not defined: -nope"},
		{"good", []string{"--config", "x.yaml"}, nil, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("prog", flag.ContinueOnError)
			fs.String("config", "", "the configuration file")
			var out, errOut bytes.Buffer
			err := cli.Parse(fs, tc.args, &out, &errOut)
			switch {
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Fatalf("Parse = %v, want %v", err, tc.wantErr)
			case tc.wantErr == nil && tc.wantErr2 == "" && err != nil:
				t.Fatalf("Parse = %v, want nil", err)
			case tc.wantErr2 != "" && err == nil:
				t.Fatal("Parse of a bad flag returned nil")
			}
			check := func(stream, got, want string) {
				if want == "" && got != "" || !strings.Contains(got, want) {
					t.Errorf("%s = %q, want it to hold %q", stream, got, want)
				}
			}
			check("stdout", out.String(), tc.wantOut)
			check("stderr", errOut.String(), tc.wantErr2)
		})
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, 0},
		{"help", flag.ErrHelp, 0},
		{"wrapped_help", errors.Join(errors.New("x"), flag.ErrHelp), 0},
		{"failure", errors.New("boom"), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := cli.ExitCode(tc.err); got != tc.want {
				t.Fatalf("ExitCode(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}
