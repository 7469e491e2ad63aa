package api

import "io"

// Routes returns "METHOD /api/v1/path" for every route the handler serves.
func Routes() []string {
	out := make([]string, 0, len(routes))
	for _, r := range routes {
		out = append(out, r.method+" "+Prefix+r.path)
	}
	return out
}

// DecodeControls is the strict body decoder applied to a controls body.
func DecodeControls(r io.Reader) (ControlsJSON, error) {
	var c ControlsJSON
	err := decodeJSON(r, &c)
	return c, err
}
