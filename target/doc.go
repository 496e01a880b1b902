// Package target is the iSCSI portal of VBS: it accepts TCP connections,
// runs the login state machine of target/iscsi on them, and in full feature
// phase moves SCSI commands, data and task management between the wire and
// the SCSI layer of target/scsi.
//
// Shape of one connection: a reader goroutine decodes PDUs and does all the
// bookkeeping (CmdSN window, R2T, Data-Out reassembly); commands run on a
// small pool of worker goroutines owned by the connection; a single writer
// goroutine batches whatever responses are ready into one writev and also
// pings idle initiators. Sessions use error recovery level 0 and one
// connection each: MC/S is not offered (MaxConnections=1), so a second
// connection naming an existing TSIH is refused with "too many
// connections".
//
// The package owns sessions and connections and nothing below them: it
// never touches a Device except through the SCSI layer, and imports none
// of blockstore, replication or control.
package target
