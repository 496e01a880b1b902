package iscsi

import "testing"

func TestTgtdSmoke(t *testing.T) {
	f := needTgtd(t)
	leakCheck(t)
	ctx := testCtx(t)
	s, err := Dial(ctx, openConfig(f))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("params %+v", s.Params())
	inq, err := s.Inquiry(ctx, lunFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("inquiry %+v", *inq)
	luns, err := s.ReportLUNs(ctx)
	t.Logf("luns %v %v", luns, err)
	c, err := s.ReadCapacity16(ctx, lunFile)
	t.Logf("cap %+v %v", c, err)
	if err := s.Logout(ctx); err != nil {
		t.Fatal(err)
	}
}
