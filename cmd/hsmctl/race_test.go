//go:build race

package main_test

// raceEnabled makes TestMain build hsmctl with the race detector too.
const raceEnabled = true
