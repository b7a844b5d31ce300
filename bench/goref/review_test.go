package main

// In-process cost of the reference's work per AdmissionReview, for bench/attribution.py:
//
//	GOREF_PAYLOADS=dir go test -run '^$' -bench . -benchtime 2000x
//
// dir holds the bench's payloads as <name>.json; each benchmark runs once per payload.

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

func payloads(b *testing.B) map[string][]byte {
	dir := os.Getenv("GOREF_PAYLOADS")
	if dir == "" {
		b.Skip("GOREF_PAYLOADS names no directory of payloads")
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		b.Fatalf("no payloads in %s: %v", dir, err)
	}
	found := make(map[string][]byte, len(files))
	for _, file := range files {
		body, err := os.ReadFile(file)
		if err != nil {
			b.Fatal(err)
		}
		found[strings.TrimSuffix(filepath.Base(file), ".json")] = body
	}
	return found
}

// cpuTime is the CPU the process has used: with GOMAXPROCS=1 and one pinned CPU, the
// benchmark's own and its GC's. Wall time would count the other processes of the machine.
func cpuTime(b *testing.B) time.Duration {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		b.Fatal(err)
	}
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano())
}

// eachPayload runs a sub-benchmark per payload, reporting its CPU time per op (cpu-ns/op).
func eachPayload(b *testing.B, run func(b *testing.B, body []byte)) {
	bodies := payloads(b)
	names := make([]string, 0, len(bodies))
	for name := range bodies {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		body := bodies[name]
		b.Run(name, func(b *testing.B) {
			started := cpuTime(b)
			run(b, body)
			b.ReportMetric(float64(cpuTime(b)-started)/float64(b.N), "cpu-ns/op")
		})
	}
}

func decoded(b *testing.B, body []byte) admissionReview {
	var document admissionReview
	if err := json.Unmarshal(body, &document); err != nil {
		b.Fatal(err)
	}
	return document
}

// BenchmarkReview is the whole answer: decode, check, mutate, encode.
func BenchmarkReview(b *testing.B) {
	eachPayload(b, func(b *testing.B, body []byte) {
		for i := 0; i < b.N; i++ {
			if _, err := review(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDecode is json.Unmarshal of the body (the pod into generic values).
func BenchmarkDecode(b *testing.B) {
	eachPayload(b, func(b *testing.B, body []byte) {
		for i := 0; i < b.N; i++ {
			decoded(b, body)
		}
	})
}

// BenchmarkMutate is the mutation of the decoded pod (it does not change the pod).
func BenchmarkMutate(b *testing.B) {
	eachPayload(b, func(b *testing.B, body []byte) {
		pod := decoded(b, body).Request.Object.(jsonObject)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := mutate(pod); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAnswer is the patch's JSON, its base64 and the AdmissionReview answer's JSON.
func BenchmarkAnswer(b *testing.B) {
	eachPayload(b, func(b *testing.B, body []byte) {
		document := decoded(b, body)
		result, err := mutate(document.Request.Object.(jsonObject))
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			patch, err := marshal(result.ops)
			if err != nil {
				b.Fatal(err)
			}
			response := admissionResponse{
				UID: document.Request.UID, Allowed: true, PatchType: "JSONPatch",
				Patch: base64.StdEncoding.EncodeToString(patch), Warnings: result.warnings,
			}
			if _, err := marshal(answer{document.APIVersion, "AdmissionReview", response}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// typedPod is what a Go webhook decoding into structs would read of a pod (the fields the
// mutation looks at); encoding/json skips the others without building values for them.
type typedPod struct {
	Metadata struct {
		Annotations map[string]string `json:"annotations"`
		Labels      map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		HostIPC bool `json:"hostIPC"`
		OS      *struct {
			Name string `json:"name"`
		} `json:"os"`
		Volumes []struct {
			Name string `json:"name"`
		} `json:"volumes"`
		InitContainers []typedContainer `json:"initContainers"`
		Containers     []typedContainer `json:"containers"`
		Resources      *typedResources  `json:"resources"`
	} `json:"spec"`
}

type typedContainer struct {
	Name          string          `json:"name"`
	RestartPolicy string          `json:"restartPolicy"`
	Resources     *typedResources `json:"resources"`
	VolumeMounts  []struct {
		MountPath string `json:"mountPath"`
	} `json:"volumeMounts"`
	VolumeDevices []struct {
		DevicePath string `json:"devicePath"`
	} `json:"volumeDevices"`
}

type typedResources struct {
	Limits   map[string]string `json:"limits"`
	Requests map[string]string `json:"requests"`
}

// BenchmarkDecodeTyped is json.Unmarshal of the body with the pod into typedPod: what the
// reference's decoding would cost were it a typed-struct webhook (it is not; see mutate.go).
func BenchmarkDecodeTyped(b *testing.B) {
	type typedReview struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Request    struct {
			UID    string   `json:"uid"`
			Object typedPod `json:"object"`
		} `json:"request"`
	}
	eachPayload(b, func(b *testing.B, body []byte) {
		for i := 0; i < b.N; i++ {
			var document typedReview
			if err := json.Unmarshal(body, &document); err != nil {
				b.Fatal(err)
			}
		}
	})
}
