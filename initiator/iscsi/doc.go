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
// and waits for it; writes happen on the caller's goroutine (or the
// reader's, for the few PDUs the protocol requires it to answer).
package iscsi
