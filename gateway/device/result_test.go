package device

import (
	"testing"

	"github.com/posgate/posgate/terminal/tlink"
)

// TestSettleKeepsStandInOfItsAnswer: the stand-in decision noted for a
// command stays on its result only when the terminal reports the action
// code the decision answered; a terminal that acted otherwise (declined on
// its own, or a later exchange answered) has no offline result.
func TestSettleKeepsStandInOfItsAnswer(t *testing.T) {
	sin := &StandIn{Approved: true, Reason: "approved", ActionCode: "000", TerminalID: "T0000001"}
	tests := []struct {
		name   string
		noted  *StandIn
		action string // the terminal's DE 39; empty: it did not say
		want   bool
	}{
		{"same_answer", sin, "000", true},
		{"terminal_did_not_say", sin, "", true},
		{"terminal_acted_otherwise", sin, "907", false},
		{"center_answered", nil, "000", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := TxnResult{ActionCode: "000", StandIn: tt.noted}
			settle(&res, &tlink.TxnResult{Outcome: tlink.OutcomeApproved, ActionCode: tt.action})
			if (res.StandIn != nil) != tt.want {
				t.Fatalf("stand-in kept %v, want %v", res.StandIn != nil, tt.want)
			}
		})
	}
}
