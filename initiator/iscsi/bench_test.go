package iscsi

import (
	"context"
	"testing"

	wire "github.com/vbs-storage/vbs/target/iscsi"
)

// benchIO runs 4 KiB reads or writes on the null LUN of every target,
// one command at a time and with many in flight.
func benchIO(b *testing.B, write bool) {
	for _, mk := range []func(testing.TB) *targetEnv{tgtdEnv, vbsEnv} {
		e := mk(b)
		b.Run(e.name, func(b *testing.B) {
			ctx := context.Background()
			s, err := Dial(ctx, e.config(e.open))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			clearUA(ctx, b, s, e.nullLUN)
			op := byte(opRead16)
			if write {
				op = opWrite16
			}
			run := func(buf []byte) error {
				var cdb [cdb16Len]byte
				rwCDB16(&cdb, op, 0, 8, false)
				var resp Response
				var err error
				if write {
					resp, err = s.Execute(ctx, e.nullLUN, cdb[:], buf, nil)
				} else {
					resp, err = s.Execute(ctx, e.nullLUN, cdb[:], nil, buf)
				}
				if err == nil && resp.Status != StatusGood {
					return resp.Err()
				}
				return err
			}
			b.Run("serial", func(b *testing.B) {
				buf := make([]byte, 4096)
				b.ReportAllocs()
				b.SetBytes(int64(len(buf)))
				for b.Loop() {
					if err := run(buf); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(4096)
				b.SetParallelism(16)
				b.RunParallel(func(pb *testing.PB) {
					buf := make([]byte, 4096)
					for pb.Next() {
						if err := run(buf); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		})
	}
}

func BenchmarkRead4K(b *testing.B)  { benchIO(b, false) }
func BenchmarkWrite4K(b *testing.B) { benchIO(b, true) }

// BenchmarkHandleDataIn measures the reader's work for a 4 KiB read
// answered with one Data-In carrying status, without a network.
func BenchmarkHandleDataIn(b *testing.B) {
	w := &wireLog{wrote: make(chan struct{}, 1)}
	s := newSession(w, w, unitParams(), discardLogger())
	s.cmdSN, s.expCmdSN, s.maxCmdSN, s.expStatSN = 1, 1, 1<<30, 1
	ctx := context.Background()
	buf := make([]byte, 4096)
	p := &wire.PDU{}
	p.SetOpcode(wire.OpSCSIDataIn, false)
	p.SetFlags(wire.FlagFinal | wire.FlagStatus)
	p.Data = make([]byte, 4096)
	cdb := []byte{opRead16}
	b.ReportAllocs()
	b.SetBytes(4096)
	for b.Loop() {
		c, err := s.Start(ctx, 0, cdb, nil, buf)
		if err != nil {
			b.Fatal(err)
		}
		p.SetITT(c.Tag())
		p.SetMaxCmdSN(s.cmdSN + 64)
		if err := s.handle(p); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Wait(ctx); err != nil {
			b.Fatal(err)
		}
		w.mu.Lock()
		w.buf.Reset()
		w.mu.Unlock()
	}
}
