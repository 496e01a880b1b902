package iscsi

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden files under testdata/login")

// counterReader is a deterministic Rand: bytes 0x10, 0x11, ... so that
// golden files hold fixed CHAP challenges.
type counterReader struct{ next byte }

func (r *counterReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.next
		r.next++
	}
	return len(p), nil
}

// harness drives one Login through a golden scenario.
type harness struct {
	cfg      LoginConfig
	targets  []TargetInfo
	login    *Login
	lastChap struct {
		id        byte
		challenge []byte
	}
	isid uint64
}

func parseCreds(s string) *Credentials {
	user, secret, _ := strings.Cut(s, ":")
	return &Credentials{User: user, Secret: secret}
}

// authorizer builds an Authorize function from directive arguments:
// chap=user:secret mutual=user:secret allow=name,name (default everyone).
func authorizer(args map[string]string) func(string) (*Credentials, *Credentials, bool) {
	var chap, mutual *Credentials
	if v, ok := args["chap"]; ok {
		chap = parseCreds(v)
	}
	if v, ok := args["mutual"]; ok {
		mutual = parseCreds(v)
	}
	allow, restricted := args["allow"]
	return func(name string) (*Credentials, *Credentials, bool) {
		if restricted && !slices.Contains(strings.Split(allow, ","), name) {
			return nil, nil, false
		}
		return chap, mutual, true
	}
}

func parseArgs(fields []string) map[string]string {
	m := make(map[string]string)
	for _, f := range fields {
		k, v, _ := strings.Cut(f, "=")
		m[k] = v
	}
	return m
}

func num(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 0, 64)
	if err != nil {
		t.Fatalf("bad number %q: %v", s, err)
	}
	return v
}

// config resets the harness. Input lines:
//
//	target NAME [alias=A] [tpgt=N] [chap=U:S] [mutual=U:S] [allow=I,I] [redirect=ADDR] [open]
//	discovery [chap=U:S] [mutual=U:S] [allow=I,I]
//	limits [maxrecv=N] [maxburst=N] [firstburst=N] [r2t=N] [conns=N]
//	complete tsih=N | error=0xCCDD
func (h *harness) config(t *testing.T, args map[string]string, lines []string) string {
	*h = harness{isid: 0x400001370000}
	h.cfg.Rand = &counterReader{next: 0x10}
	if v, ok := args["statsn"]; ok {
		h.cfg.InitialStatSN = uint32(num(t, v))
	}
	for _, line := range lines {
		f := strings.Fields(line)
		a := parseArgs(f[1:])
		switch f[0] {
		case "target":
			ti := TargetInfo{Name: f[1], Alias: a["alias"], Redirect: a["redirect"]}
			if v, ok := a["tpgt"]; ok {
				ti.PortalGroupTag = uint16(num(t, v))
			}
			if _, ok := a["open"]; !ok {
				ti.Authorize = authorizer(a)
			}
			h.targets = append(h.targets, ti)
		case "discovery":
			h.cfg.DiscoveryAuth = authorizer(a)
		case "limits":
			for k, v := range a {
				n := uint32(num(t, v))
				switch k {
				case "maxrecv":
					h.cfg.MaxRecvDataSegmentLength = n
				case "maxburst":
					h.cfg.MaxBurstLength = n
				case "firstburst":
					h.cfg.FirstBurstLength = n
				case "r2t":
					h.cfg.MaxOutstandingR2T = n
				case "conns":
					h.cfg.MaxConnections = n
				default:
					t.Fatalf("unknown limit %q", k)
				}
			}
		case "complete":
			if v, ok := a["error"]; ok {
				st := num(t, v)
				h.cfg.Complete = func(*Params) (uint16, error) {
					return 0, &LoginError{Class: uint8(st >> 8), Detail: uint8(st), Reason: "test"}
				}
			} else {
				tsih := uint16(num(t, a["tsih"]))
				h.cfg.Complete = func(p *Params) (uint16, error) {
					if p.TSIH != 0 {
						return p.TSIH, nil
					}
					return tsih, nil
				}
			}
		default:
			t.Fatalf("unknown config line %q", line)
		}
	}
	if h.cfg.Complete == nil {
		h.cfg.Complete = func(p *Params) (uint16, error) { return 0x0101, nil }
	}
	targets := h.targets
	h.cfg.LookupTarget = func(name string) (TargetInfo, bool) {
		for _, ti := range targets {
			if ti.Name == name {
				return ti, true
			}
		}
		return TargetInfo{}, false
	}
	h.login = NewLogin(h.cfg)
	return "ok"
}

var chapRe = regexp.MustCompile(`^CHAP_R=chap\((.*)\)$`)

// step sends one Login Request. Arguments: csg=N nsg=N t c op=HEX
// vmax=N vmin=N isid=N tsih=N cid=N cmdsn=N itt=N nonul xkeys=N. Input
// lines are the text, NUL-terminated unless nonul; a line
// CHAP_R=chap(SECRET) becomes the right response to the last challenge.
func (h *harness) step(t *testing.T, args map[string]string, lines []string) string {
	var req PDU
	req.SetOpcode(OpLoginReq, true)
	if v, ok := args["op"]; ok {
		req.SetOpcode(Opcode(num(t, v)), true)
	}
	var csg, nsg Stage
	if v, ok := args["csg"]; ok {
		csg = Stage(num(t, v))
	}
	if v, ok := args["nsg"]; ok {
		nsg = Stage(num(t, v))
	}
	_, tbit := args["t"]
	_, cbit := args["c"]
	var b byte
	if tbit {
		b |= FlagFinal
	}
	if cbit {
		b |= FlagContinue
	}
	b |= byte(csg)<<loginCSGShift | byte(nsg)&loginStageMsk
	req.SetFlags(b)
	field := func(k string, def uint64) uint64 {
		if v, ok := args[k]; ok {
			return num(t, v)
		}
		return def
	}
	req.SetByte2(byte(field("vmax", 0)))
	req.SetByte3(byte(field("vmin", 0)))
	req.SetISID(field("isid", h.isid))
	req.SetTSIH(uint16(field("tsih", 0)))
	req.SetITT(uint32(field("itt", 1)))
	req.SetCID(uint16(field("cid", 0)))
	req.SetCmdSN(uint32(field("cmdsn", 1)))
	var data []byte
	for _, line := range lines {
		if m := chapRe.FindStringSubmatch(line); m != nil {
			r := ChapResponse(h.lastChap.id, []byte(m[1]), h.lastChap.challenge)
			line = "CHAP_R=" + EncodeHex(r[:])
		}
		data = append(data, line...)
		data = append(data, 0)
	}
	if n := field("xkeys", 0); n > 0 {
		for i := range n {
			data = AppendText(data, fmt.Sprintf("X-io.vbs.test-key-%04d", i), "some-value")
		}
	}
	if _, ok := args["nonul"]; ok && len(data) > 0 {
		data = data[:len(data)-1]
	}
	req.Data = data
	var resp PDU
	res := h.login.Step(&req, &resp)
	return h.format(res, &req, &resp)
}

func (h *harness) format(res StepResult, req, resp *PDU) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "-> %v\n", res)
	fmt.Fprintf(&sb, "status=0x%02x%02x t=%d c=%d csg=%d nsg=%d tsih=0x%04x itt=%d statsn=%d expcmdsn=%d maxcmdsn=%d vmax=%d vact=%d data=%d",
		resp.BHS[offLoginStatusClass], resp.BHS[offLoginStatusDetail],
		b2i(resp.Transit()), b2i(resp.Continue()), resp.CSG(), resp.NSG(), resp.TSIH(), resp.ITT(),
		resp.StatSN(), resp.ExpCmdSN(), resp.MaxCmdSN(), resp.Byte2(), resp.Byte3(), len(resp.Data))
	if resp.Opcode() != OpLoginResp || resp.ISID() != req.ISID() || resp.ITT() != req.ITT() {
		fmt.Fprintf(&sb, " BAD-HEADER op=%v isid=%x", resp.Opcode(), resp.ISID())
	}
	rest := resp.Data
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			fmt.Fprintf(&sb, "\n%s (no NUL: continues)", rest)
			break
		}
		pair := string(rest[:i])
		rest = rest[i+1:]
		sb.WriteString("\n" + pair)
		k, v, _ := strings.Cut(pair, "=")
		switch k {
		case KeyChapI:
			id, _ := strconv.Atoi(v)
			h.lastChap.id = byte(id)
		case KeyChapC:
			h.lastChap.challenge, _ = DecodeBinary(v)
		}
	}
	return sb.String()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (h *harness) params() string {
	p := h.login.Params()
	return fmt.Sprintf("%+v", p)
}

// golden block: a command line, input lines, "----", expected output up
// to a blank line.
type block struct {
	cmd      string
	args     []string
	input    []string
	expected string
	pos      string
}

func readBlocks(t *testing.T, path string) (blocks []block, raw []string) {
	f, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(f))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	i := 0
	for i < len(lines) {
		line := lines[i]
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			raw = append(raw, line)
			i++
			continue
		}
		b := block{pos: fmt.Sprintf("%s:%d", path, i+1)}
		f := strings.Fields(line)
		b.cmd, b.args = f[0], f[1:]
		raw = append(raw, "\x00block")
		i++
		for i < len(lines) && lines[i] != "----" {
			b.input = append(b.input, lines[i])
			i++
		}
		i++ // ----
		var exp []string
		for i < len(lines) && lines[i] != "" {
			exp = append(exp, lines[i])
			i++
		}
		b.expected = strings.Join(exp, "\n")
		blocks = append(blocks, b)
	}
	return blocks, raw
}

func TestLoginGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/login/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			blocks, raw := readBlocks(t, path)
			var h harness
			var out strings.Builder
			bi := 0
			for _, r := range raw {
				if r != "\x00block" {
					out.WriteString(r + "\n")
					continue
				}
				b := blocks[bi]
				bi++
				args := parseArgs(b.args)
				var got string
				switch b.cmd {
				case "config":
					got = h.config(t, args, b.input)
				case "step":
					if h.login == nil {
						t.Fatalf("%s: step before config", b.pos)
					}
					got = h.step(t, args, b.input)
				case "params":
					got = h.params()
				default:
					t.Fatalf("%s: unknown command %q", b.pos, b.cmd)
				}
				out.WriteString(strings.Join(append([]string{b.cmd}, b.args...), " ") + "\n")
				for _, in := range b.input {
					out.WriteString(in + "\n")
				}
				out.WriteString("----\n" + got + "\n")
				if !*rewrite && got != b.expected {
					t.Errorf("%s: %s\ngot:\n%s\nwant:\n%s", b.pos, b.cmd, got, b.expected)
				}
			}
			if *rewrite {
				if err := os.WriteFile(path, []byte(strings.TrimRight(out.String(), "\n")+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
