// Package device holds the simple logical-unit backends of the iSCSI target
// and the parser of the LUN spec that `vbs target` takes on its command line.
//
// It owns three scsi.Device implementations:
//
//   - Null: reads zeros and discards writes (benchmarks of the protocol path);
//   - Mem: a thin, sparse, chunked in-memory disk (tests, demos, conformance);
//   - File: a sparse regular file driven with pread/pwrite, fdatasync and
//     fallocate (single-node use without the blockstore).
//
// and ParseSpec/Open, which turn "null:SIZE", "mem:SIZE", "file:PATH[,size=SIZE]"
// and "store:DIR[,size=SIZE]" into a device. ParseSize and FormatSize are the
// size-with-units helpers the other commands reuse.
//
// On disk, a file LUN is the image itself (byte offset = LBA * block size,
// holes read as zeros) plus, once metadata is set, a directory PATH.meta
// holding one file per metadata key, each replaced atomically (temporary
// file, fsync, rename, directory fsync). The image is flock(2)ed while open.
//
// This package must never import the blockstore, replication or control
// packages: a "store:" spec is parsed here but opened by cmd/vbs, which wires
// the blockstore to the target. Devices allocate nothing per read or write in
// steady state, and none of them starts a goroutine.
package device
