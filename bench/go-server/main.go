// The cheap peer server for the benchmarks: demo.v1.DemoService (proto/demo/v1/demo.proto) in Go,
// unary Process and the streaming ProcessStream (bidi) and ProcessBatch (client-streaming), with
// the same knobs as the grpc-js demo server (latency_ms, fail_code, fail_first_attempts, the
// x-demo-echo metadata). It costs the server ~15-25 µs per call, so the client is the limit.
//
// Built offline from Debian's golang-go and golang-google-grpc-dev only (build.sh). Debian's
// protoc-gen-go emits code for google.golang.org/protobuf, which golang-google-grpc-dev does not
// bring (it brings github.com/golang/protobuf 1.3), so the service is registered by hand here with
// a codec of raw bytes, and the few fields it reads and writes are encoded by hand (wire.go).
//
// Protocol with bench/procs.ts: prints {"address": ..., "pid": ...} on stdout once bound; a "reset"
// line on stdin clears the counters; "stop" (or the end of stdin) prints the counters as one JSON
// line and exits.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// rawCodec passes messages through as bytes: requests are *request (parsed by hand), responses
// are anything with appendTo.
type rawCodec struct{}

type marshaler interface{ appendTo([]byte) []byte }

func (rawCodec) Marshal(v interface{}) ([]byte, error) {
	m, ok := v.(marshaler)
	if !ok {
		return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
	}
	return m.appendTo(nil), nil
}

func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	r, ok := v.(*request)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	return r.parse(data)
}

// Name "proto" replaces grpc-go's default codec for the application/grpc content type.
func (rawCodec) Name() string { return "proto" }

type server struct {
	calls    atomic.Int64
	streams  atomic.Int64
	mu       sync.Mutex
	byStatus map[string]int64
	attempts sync.Map // id -> *atomic.Int64
}

func (s *server) count(code codes.Code, n int64) {
	s.mu.Lock()
	s.byStatus[strings.ToUpper(codeName(code))] += n
	s.mu.Unlock()
}

func codeName(code codes.Code) string {
	if code == codes.OK {
		return "OK"
	}
	name := code.String()
	// codes.Code.String() gives "Unavailable", "NotFound": the names grpc-js prints are UNAVAILABLE, NOT_FOUND.
	out := make([]byte, 0, len(name)+4)
	for i := 0; i < len(name); i++ {
		c := name[i]
		if i > 0 && c >= 'A' && c <= 'Z' {
			out = append(out, '_')
		}
		out = append(out, c)
	}
	return string(out)
}

func echoed(ctx context.Context) string {
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if values := md.Get("x-demo-echo"); len(values) > 0 {
			return values[0]
		}
	}
	return ""
}

// judge counts a request and decides its answer, as the grpc-js demo server does.
func (s *server) judge(r *request, echo string) (*response, error) {
	s.calls.Add(1)
	attempt := uint64(1)
	if r.failFirstAttempts > 0 {
		counter, _ := s.attempts.LoadOrStore(r.id, new(atomic.Int64))
		attempt = uint64(counter.(*atomic.Int64).Add(1))
	}
	if r.failCode != 0 {
		return nil, status.Errorf(codes.Code(r.failCode), "demo: asked to fail with code %d", r.failCode)
	}
	if r.failFirstAttempts > 0 && attempt <= r.failFirstAttempts {
		return nil, status.Errorf(codes.Unavailable, "demo: attempt %d of %s fails on purpose", attempt, r.id)
	}
	return &response{id: r.id, attempt: attempt, payloadLength: r.payloadLength, echoedMetadata: echo}, nil
}

func sleepMs(ctx context.Context, ms uint64) {
	if ms == 0 {
		return
	}
	timer := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}

func (s *server) process(ctx context.Context, r *request) (*response, error) {
	sleepMs(ctx, r.latencyMs)
	resp, err := s.judge(r, echoed(ctx))
	s.count(status.Code(err), 1)
	return resp, err
}

// An answer of the bidi stream, filled when its request's latency has passed.
type answer struct {
	resp *response
	err  error
}

// processStream answers each request after its own latency, in request order: a reader
// goroutine queues one future per request, this goroutine sends them in order. An error ends the
// stream (a stream cannot fail one message).
func (s *server) processStream(stream grpc.ServerStream) error {
	s.streams.Add(1)
	ctx := stream.Context()
	echo := echoed(ctx)
	futures := make(chan chan answer, 4096)
	recvErr := make(chan error, 1)
	go func() {
		defer close(futures)
		for {
			r := new(request)
			if err := stream.RecvMsg(r); err != nil {
				if err != io.EOF {
					recvErr <- err
				}
				return
			}
			future := make(chan answer, 1)
			if r.latencyMs == 0 {
				resp, err := s.judge(r, echo)
				future <- answer{resp, err}
			} else {
				time.AfterFunc(time.Duration(r.latencyMs)*time.Millisecond, func() {
					resp, err := s.judge(r, echo)
					future <- answer{resp, err}
				})
			}
			select {
			case futures <- future:
			case <-ctx.Done():
				return
			}
		}
	}()
	for future := range futures {
		var a answer
		select {
		case a = <-future:
		case <-ctx.Done():
			return ctx.Err()
		}
		s.count(status.Code(a.err), 1)
		if a.err != nil {
			return a.err
		}
		if err := stream.SendMsg(a.resp); err != nil {
			return err
		}
	}
	select {
	case err := <-recvErr:
		return err
	default:
		return nil
	}
}

// processBatch reads every request until the client half-closes, waits the largest latency, then
// answers once for the batch or fails it.
func (s *server) processBatch(stream grpc.ServerStream) error {
	s.streams.Add(1)
	ctx := stream.Context()
	echo := echoed(ctx)
	batch := &batchResponse{echoedMetadata: echo}
	var latency uint64
	var failed error
	for {
		r := new(request)
		if err := stream.RecvMsg(r); err == io.EOF {
			break
		} else if err != nil {
			return err
		}
		if r.latencyMs > latency {
			latency = r.latencyMs
		}
		if _, err := s.judge(r, echo); err != nil && failed == nil {
			failed = err
		}
		batch.count++
		batch.ids = append(batch.ids, r.id)
		batch.payloadLength += r.payloadLength
	}
	sleepMs(ctx, latency)
	s.count(status.Code(failed), int64(batch.count))
	if failed != nil {
		return failed
	}
	return stream.SendMsg(batch)
}

func serviceDesc(s *server) *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: "demo.v1.DemoService",
		HandlerType: (*interface{})(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Process",
			Handler: func(_ interface{}, ctx context.Context, dec func(interface{}) error, _ grpc.UnaryServerInterceptor) (interface{}, error) {
				r := new(request)
				if err := dec(r); err != nil {
					return nil, err
				}
				return s.process(ctx, r)
			},
		}},
		Streams: []grpc.StreamDesc{
			{StreamName: "ProcessStream", ServerStreams: true, ClientStreams: true, Handler: func(_ interface{}, stream grpc.ServerStream) error { return s.processStream(stream) }},
			{StreamName: "ProcessBatch", ClientStreams: true, Handler: func(_ interface{}, stream grpc.ServerStream) error { return s.processBatch(stream) }},
		},
		Metadata: "demo/v1/demo.proto",
	}
}

func main() {
	address := flag.String("address", "127.0.0.1:0", "address to listen on (loopback only)")
	flag.Parse()
	encoding.RegisterCodec(rawCodec{})
	listener, err := net.Listen("tcp", *address)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s := &server{byStatus: map[string]int64{}}
	grpcServer := grpc.NewServer()
	grpcServer.RegisterService(serviceDesc(s), nil)
	go func() { _ = grpcServer.Serve(listener) }()
	ready, _ := json.Marshal(map[string]interface{}{"address": listener.Addr().String(), "pid": os.Getpid()})
	fmt.Println(string(ready))

	lines := bufio.NewScanner(os.Stdin)
	for lines.Scan() {
		if strings.Contains(lines.Text(), "reset") {
			s.calls.Store(0)
			s.streams.Store(0)
			s.mu.Lock()
			s.byStatus = map[string]int64{}
			s.mu.Unlock()
		}
		if strings.Contains(lines.Text(), "stop") {
			break
		}
	}
	grpcServer.Stop()
	s.mu.Lock()
	stats, _ := json.Marshal(map[string]interface{}{"calls": s.calls.Load(), "streams": s.streams.Load(), "byStatus": s.byStatus})
	s.mu.Unlock()
	fmt.Println(string(stats))
}
