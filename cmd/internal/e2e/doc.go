// Package e2e holds the end-to-end tests of the first sale: a simulated
// terminal, the posgate gateway and the cardcenter center, each on real
// loopback listeners (TCP for the terminal, QUIC for the link), with the
// center's keys in a real SoftHSM2 token and its store in a real SQLite file.
package e2e
