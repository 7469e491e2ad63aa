package standin

import "testing"

func TestBrandOf(t *testing.T) {
	tests := []struct{ name, masked, want string }{
		{"visa", "411111******1111", "visa"},
		{"mastercard_51_55", "555555******4444", "mastercard"},
		{"mastercard_2_series", "222100******0009", "mastercard"},
		{"jcb", "353011******0000", "jcb"},
		{"amex", "378282*****0005", "amex"},
		{"unionpay", "620000******0005", "unionpay"},
		{"house", "999001******0010", "house"},
		{"other", "601100******0004", "other"},
		{"empty", "", "other"},
		{"not_digits", "******", "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := BrandOf(tt.masked); got != tt.want {
				t.Fatalf("BrandOf(%q) = %s, want %s", tt.masked, got, tt.want)
			}
		})
	}
}
