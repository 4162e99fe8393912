package ingesta

import (
	"encoding/json"
	"iter"
	"strings"
	"unicode/utf8"
)

// Request is an HTTP request sent to /v1/ingest/<deployment>[/<path>].
type Request struct {
	method  string
	path    string
	query   string
	headers []requestHeader
	body    []byte
}

type requestHeader struct {
	name  string
	value []byte
}

// NewRequest is a request, as tests build one: target is the path after
// the deployment name, optionally followed by ?query. Add headers with
// [Request.WithHeader].
func NewRequest(method, target string, body []byte) *Request {
	path, query, _ := strings.Cut(target, "?")
	if body == nil {
		body = []byte{} // an empty body is empty, not null
	}
	return &Request{method: method, path: path, query: query, body: body}
}

// WithHeader adds a header (its name lower-cased) and returns r.
func (r *Request) WithHeader(name string, value []byte) *Request {
	r.headers = append(r.headers, requestHeader{strings.ToLower(name), value})
	return r
}

// Method is POST, PUT, GET...
func (r *Request) Method() string { return r.method }

// Path is what follows the deployment's name in the URL ("/" when nothing
// does).
func (r *Request) Path() string { return r.path }

// Query is the raw query string, without "?".
func (r *Request) Query() string { return r.query }

// QueryParam is the first value of query parameter name, as written (not
// percent-decoded).
func (r *Request) QueryParam(name string) (string, bool) {
	for pair := range strings.SplitSeq(r.query, "&") {
		k, v, _ := strings.Cut(pair, "=")
		if k == name {
			return v, true
		}
	}
	return "", false
}

// Headers iterates over every header, names in lower case, in arrival
// order.
func (r *Request) Headers() iter.Seq2[string, []byte] {
	return func(yield func(string, []byte) bool) {
		for _, h := range r.headers {
			if !yield(h.name, h.value) {
				return
			}
		}
	}
}

// Header is the first value of header name (any case); nil if there is
// none.
func (r *Request) Header(name string) []byte {
	for _, h := range r.headers {
		if strings.EqualFold(h.name, name) {
			if h.value == nil {
				return []byte{}
			}
			return h.value
		}
	}
	return nil
}

// HeaderString is the first value of header name as text, if there is one
// and it is UTF-8.
func (r *Request) HeaderString(name string) (string, bool) {
	v := r.Header(name)
	if v == nil || !utf8.Valid(v) {
		return "", false
	}
	return string(v), true
}

// Body is the request body.
func (r *Request) Body() []byte { return r.body }

// BodyString is the body as UTF-8 text; a permanent error (400) if it is
// not.
func (r *Request) BodyString() (string, error) {
	if !utf8.Valid(r.body) {
		return "", Permanentf("request body is not UTF-8: %s", utf8Problem(r.body))
	}
	return string(r.body), nil
}

// DecodeJSON unmarshals the body as JSON into v; a permanent error (400)
// saying why if it is not valid.
func (r *Request) DecodeJSON(v any) error {
	if err := json.Unmarshal(r.body, v); err != nil {
		return Permanentf("request body is not valid JSON: %v", err)
	}
	return nil
}

// Response is the answer to a request, sent once every emitted record is
// acknowledged. A status of 400 or more publishes nothing of the call.
type Response struct {
	// Status is the HTTP status.
	Status uint16
	// Headers are extra response headers, as (name, value).
	Headers [][2]string
	// Body is the response body.
	Body []byte
}

// NewResponse is an empty response with status.
func NewResponse(status uint16) Response { return Response{Status: status} }

// OK is 200 OK, empty.
func OK() Response { return NewResponse(200) }

// Accepted is 202 Accepted, empty: the usual answer of an ingestion
// endpoint.
func Accepted() Response { return NewResponse(202) }

// TextResponse is status with a plain-text body.
func TextResponse(status uint16, body string) Response {
	return NewResponse(status).
		WithHeader("content-type", "text/plain; charset=utf-8").
		WithBody([]byte(body))
}

// JSONResponse is status with v serialized (see [MarshalJSON]) as the JSON
// body.
func JSONResponse(status uint16, v any) (Response, error) {
	body, err := MarshalJSON(v)
	if err != nil {
		return Response{}, Permanentf("cannot serialize the response: %v", err)
	}
	return NewResponse(status).WithHeader("content-type", "application/json").WithBody(body), nil
}

// WithHeader returns r with one more header.
func (r Response) WithHeader(name, value string) Response {
	r.Headers = append(r.Headers[:len(r.Headers):len(r.Headers)], [2]string{name, value})
	return r
}

// WithBody returns r with body.
func (r Response) WithBody(body []byte) Response {
	r.Body = body
	return r
}

// Tick is a scheduled call of a generator deployment.
type Tick struct {
	// Seq counts ticks since the deployment started on this runner, from 0.
	Seq uint64
	// ScheduledMs is when the tick was due, ms since the Unix epoch.
	ScheduledMs int64
	// IntervalMs is the deployment's schedule.interval_ms.
	IntervalMs uint32
}
