// Package blockstore is VBS's log-structured volume store. One Store per
// node holds many volumes; every volume's data is appended to shared segment
// files by one writer goroutine, and a pebble index (package index) maps each
// (volume, LBA) to where its newest data lives.
//
// # Layout
//
// A store directory holds LOCK, segments/ (the log: files named by a 16-digit
// hex segment ID, formats in package record, plus at most one ".prep" file
// being pre-formatted) and index/ (pebble). All file
// access goes through Options.FS (pebble's vfs.FS), so tests can crash the
// store or inject errors.
//
// # Write path and durability
//
// Writes are queued to the writer, which takes every request that is
// waiting, encodes them into one buffer and hands it to the OS with one
// write(2) (group commit). A write completes only after that, so killing the
// process loses no completed write. If any request in the group needs
// durability (FUA, Flush, a write-through volume) the writer issues one
// fdatasync for the whole group before completing it, and completes the
// group as soon as it returned. Before that sync it pads the log with a
// padding record to the next 4 KiB boundary of the segment file, so the
// next append starts on a fresh page and a later sync never writes again a
// page an earlier one synced (rewriting a partly synced page was once
// measured to double the cost of an fdatasync on ext4; a later sitting did
// not reproduce it, see docs/blockstore.md). Where padding does not fit,
// the segment is full and the next append starts a new one.
//
// A second goroutine, the log syncer, fdatasyncs the active segment when
// the writer asks without waiting: for a snapshot (below), and after every
// 32 MiB appended, so the sync that seals a full segment, which the writer
// does wait for, finds little left to write.
//
// # Index/log invariant (the crash model)
//
// The log is the truth; the index is a cache of it that may lag behind.
//
//  1. The pebble index never refers to log bytes that are not durable. New
//     mappings first go to an in-memory overlay ("dirty" map) that reads
//     consult before pebble. Only after the log has been fdatasync'ed does
//     the writer move the overlay into pebble, in one batch that also records
//     the marker: the log position (segment, offset) up to which the index is
//     complete, and the sequence number. A Flush or FUA write does not move
//     it: its log bytes are durable, and replay (3) rebuilds the overlay from
//     the log past the marker. The writer moves it when it reaches
//     Options.MaxDirty (which bounds it), at segment roll (so the overlay
//     only ever refers to the active segment), for snapshot deletes,
//     revert, flatten and diffs (syncLog), on checkpoint, and at close.
//     Preserved versions (5) that a write made wait in memory and move
//     with it. Until then
//     the index may still name the older location of a block the overlay
//     has overwritten: harmless for reads, which see the overlay first, but
//     the segment cleaner counts such a block as live unless it checkpoints
//     first.
//
//  2. Trims (unmap, write zeroes) are written to the log and applied to
//     pebble at once as a range deletion. Losing the log record in a crash
//     while pebble kept the deletion leaves the range zero, which is the
//     newer of the two states, so every block still reads old-or-new.
//
//  3. On Open the store replays the log from the marker to the end of the
//     valid log (the first record that does not verify, or a segment's
//     seal), applying records in log order and stepping over padding.
//     Replay is idempotent. Then it seals the last segment at its valid end
//     and records the marker with a synced commit before it accepts writes,
//     and appends only to a new segment, never after a possibly torn tail.
//
//  4. Before a new segment is created the previous one is fdatasync'ed and
//     sealed (its valid length recorded in the index with a synced commit),
//     so only the newest segment can have a torn tail. A new segment is
//     either created empty or, on the OS filesystem, a pre-formatted file of
//     synced zeros renamed into place (prep.go); only a complete, synced
//     file is ever renamed, and zeros end the valid log like end-of-file.
//
//  5. A snapshot is a cut in the sequence numbers, made at once by the
//     writer; from then on writes and trims keep the versions it sees as
//     preserved versions. It is recorded in the index (synced), and
//     CreateSnapshot returns, only once the log is durable up to the cut;
//     the writer does not wait for that sync (snapsync.go). A preserved
//     version goes to the index only when its log bytes are durable: a
//     trim's at once when they are (the trim takes the live mapping out of
//     the index at once), a write's with the overlay that supersedes it
//     (until then the index still has the old mapping as live, and replay
//     preserves the version again), or with a trim of that block. Until
//     then it is held in memory, where
//     snapshot reads, clone trims and the cleaner see it. The marker does
//     not move with a snapshot, so replay applies writes from both sides
//     of a cut, each against the newest snapshot older than itself, and
//     Open takes the next sequence number above every snapshot's.
//
//  6. Segment cleaning relocates live blocks through the writer, syncs them
//     and commits their new locations (synced) before it removes a segment,
//     under a lock every read holds from lookup to data read.
//
//  7. Reads copy data out of read-only shared mappings of the segment files
//     (segview.go), or pread them where a file has no descriptor. A mapping
//     goes away only with its segment, under the same lock as in 6, or at
//     Close; a fault in one (a file cut short behind the store's back) is a
//     *CorruptionError, not a crash.
//
// Together: after any crash, every block reads either a value it held or a
// newer value written before the crash, and every write covered by a
// completed Flush (or written with FUA, or to a write-through volume) reads
// back exactly.
//
// # Checksums
//
// Every record carries a CRC-32C over its header and data, checked by replay
// and scrub. The index also keeps each block's own CRC-32C, so a read of one
// block reads and verifies exactly that block. A mismatch returns a
// *CorruptionError (errors.Is ErrCorrupt), is counted in Stats, and is never
// returned as data.
//
// The formats and the full crash model are in docs/blockstore.md.
//
// This package must never import anything under target/ (layering): the
// adapter to the SCSI Device interface lives in internal/storedev.
package blockstore
