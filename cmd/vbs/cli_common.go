package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vbs-storage/vbs/control/api"
	"github.com/vbs-storage/vbs/control/domain"
	"github.com/vbs-storage/vbs/control/server"
	vbsv1 "github.com/vbs-storage/vbs/proto/gen/vbs/v1"
	"github.com/vbs-storage/vbs/proto/gen/vbs/v1/vbsv1connect"
)

// Environment variables the CLI reads.
const (
	envAPI   = "VBS_API"
	envToken = "VBS_TOKEN"
)

// Output formats of -o.
const (
	outputTable = "table"
	outputJSON  = "json"
)

// cliPollInterval is how often --wait polls a volume or snapshot state.
const cliPollInterval = 200 * time.Millisecond

// cli is what every verb needs: API clients, the output format, stdout.
type cli struct {
	vol    vbsv1connect.VolumeServiceClient
	snap   vbsv1connect.SnapshotServiceClient
	exp    vbsv1connect.ExportServiceClient
	node   vbsv1connect.NodeServiceClient
	op     vbsv1connect.OperationServiceClient
	output string
	out    io.Writer
	errOut io.Writer
}

// stringFlag reads a persistent flag by name ("" when undefined).
func stringFlag(cmd *cobra.Command, name string) string {
	f := cmd.Flags().Lookup(name)
	if f == nil {
		return ""
	}
	return f.Value.String()
}

// newCLI resolves the API URL (--api, VBS_API, the local default) and the
// token (--token-file, VBS_TOKEN, DEFAULT_DATA_DIR/api-token).
func newCLI(cmd *cobra.Command) (*cli, error) {
	url := stringFlag(cmd, flagAPI)
	if url == "" {
		url = os.Getenv(envAPI)
	}
	if url == "" {
		url = server.DefaultAPIURL
	}
	url = strings.TrimRight(url, "/")
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		return nil, usageError{fmt.Errorf("--%s %q: want http://HOST:PORT or https://HOST:PORT", flagAPI, url)}
	}
	var token string
	if tf := stringFlag(cmd, flagTokenFile); tf != "" {
		t, err := server.ReadToken(tf)
		if err != nil {
			return nil, err
		}
		token = t
	} else if t := os.Getenv(envToken); t != "" {
		token = strings.TrimSpace(t)
	} else {
		p := filepath.Join(server.DefaultDataDir(), server.TokenFile)
		t, err := server.ReadToken(p)
		if err != nil {
			return nil, fmt.Errorf("%w\nPass --%s FILE (DATA_DIR/%s of the server) or set %s", err, flagTokenFile, server.TokenFile, envToken)
		}
		token = t
	}
	output := stringFlag(cmd, flagOutput)
	switch output {
	case "", outputTable:
		output = outputTable
	case outputJSON:
	default:
		return nil, usageError{fmt.Errorf("-o %q: want table or json", output)}
	}
	hc := http.DefaultClient
	opts := []connect.ClientOption{connect.WithInterceptors(api.Bearer(token))}
	return &cli{
		vol:    vbsv1connect.NewVolumeServiceClient(hc, url, opts...),
		snap:   vbsv1connect.NewSnapshotServiceClient(hc, url, opts...),
		exp:    vbsv1connect.NewExportServiceClient(hc, url, opts...),
		node:   vbsv1connect.NewNodeServiceClient(hc, url, opts...),
		op:     vbsv1connect.NewOperationServiceClient(hc, url, opts...),
		output: output,
		out:    cmd.OutOrStdout(),
		errOut: cmd.ErrOrStderr(),
	}, nil
}

// explain turns an API error into a message that says what to do.
func explain(err error) error {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return err
	}
	msg := ce.Message()
	switch ce.Code() {
	case connect.CodeUnavailable:
		if strings.Contains(msg, "connection refused") || strings.Contains(msg, "no such host") {
			return fmt.Errorf("cannot reach the API (%s): is 'vbs server' running? Point --%s or %s at it", msg, flagAPI, envAPI)
		}
		return fmt.Errorf("unavailable: %s", msg)
	case connect.CodeUnauthenticated:
		return fmt.Errorf("%s\nUse the server's token: --%s DATA_DIR/%s or %s=TOKEN", msg, flagTokenFile, server.TokenFile, envToken)
	case connect.CodePermissionDenied:
		return fmt.Errorf("permission denied: %s; use a token that may change things", msg)
	case connect.CodeInvalidArgument:
		if f := ce.Meta().Get(api.FieldMetaKey); f != "" {
			return fmt.Errorf("invalid %s: %s", f, msg)
		}
		return fmt.Errorf("invalid argument: %s", msg)
	case connect.CodeNotFound:
		return fmt.Errorf("not found: %s", msg)
	case connect.CodeAlreadyExists:
		return fmt.Errorf("already exists: %s", msg)
	case connect.CodeFailedPrecondition:
		return fmt.Errorf("refused: %s", msg)
	case connect.CodeResourceExhausted:
		return fmt.Errorf("limit reached: %s; delete something first", msg)
	}
	return fmt.Errorf("%s: %s", ce.Code(), msg)
}

// printJSON writes one message as JSON (snake_case field names).
func (c *cli) printJSON(m proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  ", UseProtoNames: true}.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	_, err = fmt.Fprintf(c.out, "%s\n", b)
	return err
}

// table writes rows aligned under a header.
func (c *cli) table(header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// stateName trims an enum's type prefix: VOLUME_STATE_IN_USE -> in-use.
func stateName(s fmt.Stringer, prefix string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(s.String(), prefix)), "_", "-")
}

func age(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	d := time.Since(t.AsTime()).Round(time.Second)
	switch {
	case d < time.Minute:
		return d.String()
	case d < time.Hour:
		return d.Round(time.Minute).String()
	}
	return d.Round(time.Hour).String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// args returns a cobra.PositionalArgs demanding exactly n arguments with
// a usage error that names them.
func args(names ...string) cobra.PositionalArgs {
	return func(_ *cobra.Command, a []string) error {
		if len(a) != len(names) {
			return usageError{fmt.Errorf("want %d argument(s): %s", len(names), strings.Join(names, " "))}
		}
		return nil
	}
}

// parseSizeFlag parses --size.
func parseSizeFlag(s string) (uint64, error) {
	if s == "" {
		return 0, usageError{errors.New("--size is required (e.g. 10G)")}
	}
	n, err := domain.ParseSize(s)
	if err != nil {
		return 0, usageError{err}
	}
	return n, nil
}

// parseRef splits VOLUME@SNAPSHOT.
func parseRef(s string) (string, string, error) {
	v, sn, ok := strings.Cut(s, "@")
	if !ok || v == "" || sn == "" {
		return "", "", usageError{fmt.Errorf("%q: want VOLUME@SNAPSHOT", s)}
	}
	return v, sn, nil
}

// waitOperation follows an operation with WatchOperation, showing
// progress on stderr, and fails unless it succeeds.
func (c *cli) waitOperation(ctx context.Context, id string) (*vbsv1.Operation, error) {
	st, err := c.op.WatchOperation(ctx, connect.NewRequest(&vbsv1.WatchOperationRequest{Id: id}))
	if err != nil {
		return nil, explain(err)
	}
	defer st.Close()
	var last *vbsv1.Operation
	for st.Receive() {
		last = st.Msg().Operation
		fmt.Fprintf(c.errOut, "%s %s: %s %d%% %s\n", stateName(last.Kind, "OPERATION_KIND_"), last.Id,
			stateName(last.State, "OPERATION_STATE_"), last.ProgressPercent, last.Message)
	}
	if err := st.Err(); err != nil {
		return nil, explain(err)
	}
	if last == nil {
		return nil, fmt.Errorf("operation %s: the server sent nothing", id)
	}
	if last.State != vbsv1.OperationState_OPERATION_STATE_SUCCEEDED {
		return last, fmt.Errorf("operation %s %s: %s", id, stateName(last.State, "OPERATION_STATE_"), last.Message)
	}
	return last, nil
}
