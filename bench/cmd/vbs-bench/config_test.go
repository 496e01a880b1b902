package main

import (
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/vbs-storage/vbs/bench/report"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1073741824", 1 << 30, true},
		{"1g", 1 << 30, true},
		{"1G", 1 << 30, true},
		{"1GiB", 1 << 30, true},
		{"512m", 512 << 20, true},
		{"512MB", 512 << 20, true},
		{"4k", 4096, true},
		{"2t", 2 << 40, true},
		{"", 0, false},
		{"0", 0, false},
		{"-1g", 0, false},
		{"1x", 0, false},
		{"g", 0, false},
		{"99999999999t", 0, false},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, o options)
		usage bool
	}{
		{name: "defaults", args: nil, check: func(t *testing.T, o options) {
			if !slices.Equal(o.jobs, defaultJobs()) || !slices.Equal(o.luns, []string{report.LUNNull, report.LUNFile}) ||
				!slices.Equal(o.targets, allTargets()) || o.size != 1<<30 || o.repeat != 1 ||
				o.runtime != 10*time.Second || o.ramp != 2*time.Second || o.tgtControlPort != o.tgtPort {
				t.Errorf("defaults = %+v", o)
			}
		}},
		{name: "subset keeps canonical order and drops duplicates",
			args: []string{"--jobs", "seqread-128k-qd16, randread-4k-qd1,seqread-128k-qd16", "--luns", "store,null", "--targets", "vbs"},
			check: func(t *testing.T, o options) {
				if !slices.Equal(o.jobs, []string{"randread-4k-qd1", "seqread-128k-qd16"}) ||
					!slices.Equal(o.luns, []string{report.LUNNull, report.LUNStore}) ||
					!slices.Equal(o.targets, []string{report.TargetVBS}) {
					t.Errorf("got jobs %v luns %v targets %v", o.jobs, o.luns, o.targets)
				}
			}},
		{name: "control port", args: []string{"--tgt-port", "4000", "--tgt-control-port", "77"}, check: func(t *testing.T, o options) {
			if o.tgtPort != 4000 || o.tgtControlPort != 77 {
				t.Errorf("ports = %d, %d", o.tgtPort, o.tgtControlPort)
			}
		}},
		{name: "tgt port above tgtd's -C range needs a control port", args: []string{"--tgt-port", "40000"}, usage: true},
		{name: "control port out of range", args: []string{"--tgt-control-port", "32768"}, usage: true},
		{name: "unknown job", args: []string{"--jobs", "nope"}, usage: true},
		{name: "unknown lun", args: []string{"--luns", "mem"}, usage: true},
		{name: "empty targets", args: []string{"--targets", ","}, usage: true},
		{name: "size not MiB multiple", args: []string{"--size", "1000000"}, usage: true},
		{name: "bad size", args: []string{"--size", "big"}, usage: true},
		{name: "zero repeat", args: []string{"--repeat", "0"}, usage: true},
		{name: "zero runtime", args: []string{"--runtime", "0s"}, usage: true},
		{name: "bad name", args: []string{"--name", "a/b"}, usage: true},
		{name: "stray argument", args: []string{"extra"}, usage: true},
		{name: "unknown flag", args: []string{"--frobnicate"}, usage: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseOptions(tt.args, io.Discard)
			if tt.usage {
				if !errors.Is(err, ErrUsage) {
					t.Fatalf("err = %v, want ErrUsage", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, o)
		})
	}
}
