package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/posgate/posgate/cmd/internal/cli"
	"github.com/posgate/posgate/gateway/adminapi"
)

// defaultGateway is the gateway's http.listen default; the offline admin
// routes answer loopback clients only.
const defaultGateway = "http://127.0.0.1:8081"

// queueStates are the forwarding states in the order a queue is shown.
var queueStates = [...]string{"pending", "sent", "accepted", "rejected", "expired"}

// runOffline runs `devicectl offline status|rejected|forward`.
func runOffline(ctx context.Context, args []string, out, errOut io.Writer, client *http.Client) error {
	if len(args) == 0 {
		return fmt.Errorf("offline needs status, rejected or forward: %w", errUsage)
	}
	sub := args[0]
	if sub != "status" && sub != "rejected" && sub != "forward" {
		return fmt.Errorf("unknown offline command %q: %w", sub, errUsage)
	}
	fs := flag.NewFlagSet("devicectl offline "+sub, flag.ContinueOnError)
	base := fs.String("gateway", defaultGateway, "the gateway's HTTP address (http.listen), reached over loopback")
	asJSON := fs.Bool("json", false, "print the gateway's JSON answer instead of text")
	if err := cli.Parse(fs, args[1:], out, errOut); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", err, errUsage)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("offline %s takes no arguments, got %q: %w", sub, fs.Args(), errUsage)
	}
	u, err := url.Parse(*base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--gateway %q is not an http:// or https:// address: %w", *base, errUsage)
	}
	switch sub {
	case "status":
		var st adminapi.Status
		if err := call(ctx, client, http.MethodGet, *base, "/offline/status", &st); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(out, st)
		}
		return printStatus(out, st)
	case "rejected":
		var rj adminapi.Rejected
		if err := call(ctx, client, http.MethodGet, *base, "/offline/rejected", &rj); err != nil {
			return err
		}
		if rj.Rejected == nil {
			rj.Rejected = []adminapi.Record{}
		}
		if *asJSON {
			return printJSON(out, rj)
		}
		return printRejected(out, rj)
	default:
		var ans struct {
			Status string `json:"status"`
		}
		if err := call(ctx, client, http.MethodPost, *base, "/offline/forward", &ans); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(out, ans)
		}
		_, err := fmt.Fprintln(out, ans.Status)
		return err
	}
}

// call sends one admin request and decodes a 2xx answer into v; any other
// answer is an error carrying the gateway's message.
func call(ctx context.Context, client *http.Client, method, base, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(base, "/")+path, nil)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(body))
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if len(msg) > 200 {
			msg = msg[:200]
		}
		return fmt.Errorf("%s %s: gateway answered %s: %s", method, path, resp.Status, msg)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s %s: answer is not the documented JSON: %w", method, path, err)
	}
	return nil
}

func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printStatus(out io.Writer, st adminapi.Status) error {
	tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "STATE\tCOUNT\tAMOUNT")
	for _, s := range queueStates {
		t := st.Queue[s]
		fmt.Fprintf(tw, "%s\t%d\t%d\n", s, t.Count, t.Amount)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "exposure: %d\n", st.Exposure)
	if st.Oldest.IsZero() {
		fmt.Fprintln(out, "oldest queued: none")
	} else {
		fmt.Fprintf(out, "oldest queued: %s\n", st.Oldest.UTC().Format(time.RFC3339))
	}
	n := st.Negative
	if !n.Loaded {
		fmt.Fprintln(out, "negative file: not loaded")
	} else {
		synced := "never"
		if !n.SyncedAt.IsZero() {
			synced = n.SyncedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(out, "negative file: version %d, synced at %s\n", n.Version, synced)
	}
	if s := n.Session; s != nil {
		kind := "delta"
		if s.Snapshot {
			kind = "snapshot"
		}
		fmt.Fprintf(out, "negative-file sync in progress: %s %d -> %d, chunk %d of %d next\n", kind, s.Base, s.Version, s.Next, s.Total)
	}
	return nil
}

// orDash prints an empty field as "-".
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printRejected(out io.Writer, rj adminapi.Rejected) error {
	if len(rj.Rejected) == 0 {
		_, err := fmt.Fprintln(out, "no rejected offline approvals")
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAPPROVED\tBY\tTERMINAL\tMERCHANT\tCARD\tAMOUNT\tCURRENCY\tAPPROVAL\tACTION")
	for _, r := range rj.Rejected {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.ID, r.ApprovedAt.UTC().Format(time.RFC3339), orDash(r.Origin),
			r.TerminalID, r.MerchantID, r.MaskedPAN, r.Amount, r.Currency, r.ApprovalCode, r.Action)
	}
	return tw.Flush()
}
