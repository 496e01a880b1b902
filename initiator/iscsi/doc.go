// Package iscsi is a pure-Go iSCSI initiator (RFC 7143): discovery, login
// with CHAP (one-way and mutual), and a full feature phase session that
// runs many SCSI commands at once over one connection.
//
// It owns the host side of the protocol only. The PDU codec, text keys and
// CHAP arithmetic come from the target's protocol package
// (github.com/vbs-storage/vbs/target/iscsi); this package must never
// import any other VBS package, so that it can be used by tests, the bench
// harness and the host agent alike.
//
// Untrusted input: every length, offset and sequence number a target sends
// is checked before it is used. A target can fail its own commands or the
// session, but never make this package write outside a caller's buffer or
// allocate memory sized by a value it chose.
//
// Goroutines: a Session owns exactly one reader goroutine. Close stops it
// and waits for it. Requests and Data-Out are written on the goroutine
// that issued them (Command.Wait sends the data R2Ts ask for); the reader
// writes only the PDUs the protocol makes it answer at once (NOP-Out for a
// target ping, Logout Request for an Async logout request). This relies on
// the target reading while it writes, as every target with separate
// receive and transmit paths does.
//
// Error recovery level 0 only: a digest error, a protocol violation or a
// lost connection fails the whole session (ErrSessionClosed); callers
// re-dial.
package iscsi
