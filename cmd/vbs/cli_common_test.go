package main

import (
	"errors"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/vbs-storage/vbs/control/api"
	vbsv1 "github.com/vbs-storage/vbs/proto/gen/vbs/v1"
)

func TestExplain(t *testing.T) {
	field := connect.NewError(connect.CodeInvalidArgument, errors.New("size_bytes: is 1 bytes"))
	field.Meta().Set(api.FieldMetaKey, "size_bytes")
	tests := []struct {
		in   error
		want string
	}{
		{connect.NewError(connect.CodeUnavailable, errors.New("dial tcp 127.0.0.1:7480: connect: connection refused")), "is 'vbs server' running?"},
		{connect.NewError(connect.CodeUnauthenticated, errors.New("invalid bearer token")), "--token-file"},
		{field, "invalid size_bytes: size_bytes: is 1 bytes"},
		{connect.NewError(connect.CodeNotFound, errors.New(`volume "x" not found`)), `not found: volume "x" not found`},
		{connect.NewError(connect.CodeFailedPrecondition, errors.New("revoke access first")), "refused: revoke access first"},
		{connect.NewError(connect.CodeResourceExhausted, errors.New("limit reached: at most 4096 volumes")), "delete something first"},
		{errors.New("plain"), "plain"},
	}
	for _, tc := range tests {
		if got := explain(tc.in).Error(); !strings.Contains(got, tc.want) {
			t.Errorf("explain(%v) = %q, want it to contain %q", tc.in, got, tc.want)
		}
	}
}

func TestParseHelpers(t *testing.T) {
	if v, s, err := parseRef("db@nightly"); err != nil || v != "db" || s != "nightly" {
		t.Fatalf("parseRef = %q %q %v", v, s, err)
	}
	for _, bad := range []string{"db", "@s", "db@"} {
		var ue usageError
		if _, _, err := parseRef(bad); !errors.As(err, &ue) {
			t.Errorf("parseRef(%q) = %v, want a usage error", bad, err)
		}
	}
	if n, err := parseSizeFlag("10G"); err != nil || n != 10<<30 {
		t.Fatalf("parseSizeFlag = %d %v", n, err)
	}
	var ue usageError
	if _, err := parseSizeFlag(""); !errors.As(err, &ue) {
		t.Fatalf("missing --size = %v", err)
	}
	if l, err := parseLabels([]string{"app=pg", "tier="}); err != nil || l["app"] != "pg" || l["tier"] != "" {
		t.Fatalf("parseLabels = %v %v", l, err)
	}
	if _, err := parseLabels([]string{"noequals"}); !errors.As(err, &ue) {
		t.Fatalf("bad label = %v", err)
	}
	if got := stateName(vbsv1.VolumeState_VOLUME_STATE_IN_USE, "VOLUME_STATE_"); got != "in-use" {
		t.Fatalf("stateName = %q", got)
	}
}

func TestVolumeTable(t *testing.T) {
	var b strings.Builder
	c := &cli{out: &b, output: outputTable}
	err := c.table(volumeHeader(), volumeRows([]*vbsv1.Volume{
		{Name: "db", SizeBytes: 10 << 30, State: vbsv1.VolumeState_VOLUME_STATE_AVAILABLE, Node: "n1"},
		{Name: "web-clone", SizeBytes: 3 << 29, State: vbsv1.VolumeState_VOLUME_STATE_ERROR, StateReason: "pool full", SourceSnapshot: "web@s1", Node: "n1"},
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := "NAME       SIZE     STATE              SOURCE  NODE  AGE\n" +
		"db         10 GiB   available          -       n1    -\n" +
		"web-clone  1.5 GiB  error (pool full)  web@s1  n1    -\n"
	if b.String() != want {
		t.Fatalf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}
