// Command goref is the benchmark's independent reference: a Kubernetes mutating admission
// webhook for the shm-webhook's /dev/shm rules (mutate.go), written with Go's standard
// library only (net/http, crypto/tls, encoding/json) and sharing no code with the project.
// The bench builds it at run time and serves it on the same certificate, CPU and HTTP
// settings as the Python servers, so that their figures can be read as ratios to it.
//
//	goref -port 8444 -cert tls.crt -key tls.key
//
// POST /mutate answers an AdmissionReview (v1 or v1beta1) of a Pod CREATE with a base64
// JSONPatch; /readyz and /healthz answer "ok". The envelope guards are those of the
// webhook's documentation: Content-Type application/json, a body of at most 8 MiB, request
// headers of at most 32 KiB, a whole request within 10 s, HTTP/1.1 only, TLS 1.2 or later.
// No metrics, no log line per admission. With -cached it answers every request with its
// answer to the first body, read but not parsed: what TLS, HTTP and the body's reading cost.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"mime"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	maxBodyBytes   = 8 << 20
	maxHeaderBytes = 32 << 10
	readTimeout    = 10 * time.Second
	idleTimeout    = 5 * time.Second // uvicorn's keep-alive timeout
)

type groupVersionKind struct {
	Group   string `json:"group"`
	Version string `json:"version"`
	Kind    string `json:"kind"`
}

type admissionRequest struct {
	UID      string            `json:"uid"`
	Kind     *groupVersionKind `json:"kind"`
	Resource *struct {
		Resource string `json:"resource"`
	} `json:"resource"`
	SubResource string `json:"subResource"`
	Operation   string `json:"operation"`
	Object      any    `json:"object"`
}

type admissionReview struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Request    *admissionRequest `json:"request"`
}

type statusResult struct {
	Code    int    `json:"code"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

type admissionResponse struct {
	UID       string        `json:"uid"`
	Allowed   bool          `json:"allowed"`
	PatchType string        `json:"patchType,omitempty"`
	Patch     string        `json:"patch,omitempty"`
	Status    *statusResult `json:"status,omitempty"`
	Warnings  []string      `json:"warnings,omitempty"`
}

type answer struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Response   admissionResponse `json:"response"`
}

// cache holds the first answer under -cached (nil otherwise).
var cache *atomic.Pointer[[]byte]

// badRequest is a malformed request: HTTP 400 with its message.
type badRequest string

func (e badRequest) Error() string { return string(e) }

// marshal is json.Marshal without HTML escaping (Kubernetes does not escape `<`, `>`, `&`).
func marshal(value any) ([]byte, error) {
	var buffer bytes.Buffer
	encoder := json.NewEncoder(&buffer)
	encoder.SetEscapeHTML(false)
	if err := encoder.Encode(value); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buffer.Bytes(), []byte("\n")), nil
}

// review answers one AdmissionReview body.
func review(body []byte) ([]byte, error) {
	var document admissionReview
	if err := json.Unmarshal(body, &document); err != nil {
		return nil, badRequest("the body is not an AdmissionReview: " + err.Error())
	}
	if document.APIVersion != "admission.k8s.io/v1" && document.APIVersion != "admission.k8s.io/v1beta1" {
		return nil, badRequest("apiVersion must be admission.k8s.io/v1 or admission.k8s.io/v1beta1")
	}
	if document.Kind != "AdmissionReview" {
		return nil, badRequest(`kind must be "AdmissionReview"`)
	}
	request := document.Request
	if request == nil || request.UID == "" {
		return nil, badRequest("request or request.uid is missing")
	}
	response := admissionResponse{UID: request.UID, Allowed: true}
	if isPodCreate(request) {
		pod, ok := request.Object.(jsonObject)
		if !ok {
			return nil, badRequest("request.object of a Pod CREATE is missing or not an object")
		}
		result, err := mutate(pod)
		if errors.Is(err, errInvalid) {
			return nil, badRequest(err.Error())
		} else if err != nil {
			return nil, err
		}
		response.Warnings = result.warnings
		if result.denial != "" {
			response.Allowed = false
			response.Status = &statusResult{400, "BadRequest", result.denial}
		} else if len(result.ops) > 0 {
			patch, err := marshal(result.ops)
			if err != nil {
				return nil, err
			}
			response.PatchType = "JSONPatch"
			response.Patch = base64.StdEncoding.EncodeToString(patch)
		}
	}
	return marshal(answer{document.APIVersion, "AdmissionReview", response})
}

func isPodCreate(r *admissionRequest) bool {
	return r.Operation == "CREATE" && r.SubResource == "" &&
		r.Kind != nil && *r.Kind == groupVersionKind{"", "v1", "Pod"} &&
		r.Resource != nil && r.Resource.Resource == "pods"
}

func serveMutate(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if media, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || media != "application/json" {
		http.Error(w, "Content-Type must be application/json", http.StatusBadRequest)
		return
	}
	if r.ContentLength > maxBodyBytes {
		http.Error(w, fmt.Sprintf("the body exceeds %d bytes", maxBodyBytes), http.StatusRequestEntityTooLarge)
		return
	}
	var body bytes.Buffer
	if r.ContentLength > 0 {
		body.Grow(int(r.ContentLength))
	}
	if _, err := body.ReadFrom(http.MaxBytesReader(w, r.Body, maxBodyBytes)); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, fmt.Sprintf("the body exceeds %d bytes", maxBodyBytes), http.StatusRequestEntityTooLarge)
		}
		return // otherwise the client went away: nobody to answer
	}
	var result []byte
	var err error
	if cache != nil && cache.Load() != nil {
		result = *cache.Load()
	} else if result, err = review(body.Bytes()); err == nil && cache != nil {
		cache.CompareAndSwap(nil, &result)
	}
	var bad badRequest
	if errors.As(err, &bad) {
		http.Error(w, bad.Error(), http.StatusBadRequest)
		return
	} else if err != nil {
		log.Printf("admission failed: %v", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	header := w.Header()
	header["Content-Type"] = []string{"application/json"}
	// Set, or net/http would chunk an answer past 2 KiB: the kube-apiserver and the bench's
	// client both read either, but the Python servers always send a length.
	header["Content-Length"] = []string{strconv.Itoa(len(result))}
	_, _ = w.Write(result)
}

func serveOK(w http.ResponseWriter, _ *http.Request) {
	w.Header()["Content-Type"] = []string{"text/plain; charset=utf-8"}
	_, _ = w.Write([]byte("ok"))
}

func main() {
	host := flag.String("host", "127.0.0.1", "address to listen on")
	port := flag.Int("port", 8443, "port to listen on")
	certFile := flag.String("cert", "", "PEM certificate chain")
	keyFile := flag.String("key", "", "PEM private key")
	cached := flag.Bool("cached", false, "answer every request with the first answer")
	flag.Parse()
	if *cached {
		cache = new(atomic.Pointer[[]byte])
	}
	certificate, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "goref: %v\n", err)
		os.Exit(2)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/mutate", serveMutate)
	mux.HandleFunc("/readyz", serveOK)
	mux.HandleFunc("/healthz", serveOK)
	server := &http.Server{
		Addr:           net.JoinHostPort(*host, strconv.Itoa(*port)),
		Handler:        mux,
		ReadTimeout:    readTimeout,
		IdleTimeout:    idleTimeout,
		MaxHeaderBytes: maxHeaderBytes,
		TLSConfig:      &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{certificate}},
		// An empty map turns HTTP/2 off: the Python servers speak HTTP/1.1 only.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	stop, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer cancel()
	go func() {
		<-stop.Done()
		_ = server.Shutdown(context.Background())
	}()
	if err := server.ListenAndServeTLS("", ""); !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(os.Stderr, "goref: %v\n", err)
		os.Exit(1)
	}
}
