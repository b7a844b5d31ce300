package main

// What the reference does to a pod: the shm-webhook's documented rules for a pod that asks
// for a /dev/shm size (the `shm-size` annotation) under the default settings:
//
//   - a memory-backed emptyDir volume ("dshm", or "dshm-N" when taken) of that size;
//   - a /dev/shm mount in every init container and container that has nothing there yet;
//   - the size added to the memory request and limit of the default container (the one the
//     kubectl.kubernetes.io/default-container annotation names, else the first), or of the
//     first mounted container when the default one keeps a /dev/shm of its own; a pod-level
//     memory request or limit grows too;
//   - the shm-injection-status annotation, and a warning when the pod's memory limit caps the
//     volume below its size.
//
// Pods this reference does not mutate (no annotation, size 0, opted out, hostIPC, Windows,
// mirror pods, already injected) are admitted unchanged: re-invocation, default sizes and
// the other settings of the webhook are out of its scope. The pod is decoded whole into
// generic JSON values, as the webhook decodes it, and only the fields read are checked.

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"
)

const (
	sizeAnnotation    = "shm-size"
	statusAnnotation  = "shm-injection-status"
	defaultAnnotation = "kubectl.kubernetes.io/default-container"
	mirrorAnnotation  = "kubernetes.io/config.mirror"
	optOutLabel       = "shm-injection"
	volumeName        = "dshm"
	mountPath         = "/dev/shm"
	maxWarnings       = 5
	maxWarningRunes   = 120
)

type jsonObject = map[string]any

type op struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

type emptyDir struct {
	Medium    string `json:"medium"`
	SizeLimit string `json:"sizeLimit"`
}

type volume struct {
	Name     string   `json:"name"`
	EmptyDir emptyDir `json:"emptyDir"`
}

type volumeMount struct {
	Name      string `json:"name"`
	MountPath string `json:"mountPath"`
}

type injectionStatus struct {
	Size    string   `json:"size"`
	Volume  string   `json:"volume"`
	Mounted []string `json:"mounted"`
	Charged []string `json:"charged"`
}

// mutation is the answer for one pod: ops (none: admit unchanged), warnings, or a denial.
type mutation struct {
	ops      []op
	warnings []string
	denial   string
}

// errInvalid marks a pod field of the wrong type: the request is malformed (HTTP 400).
var errInvalid = errors.New("invalid pod")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errInvalid, fmt.Sprintf(format, args...))
}

func object(value any, where string) (jsonObject, error) {
	if value == nil {
		return nil, nil // absent or null reads as empty; a nil map reads like one
	}
	found, ok := value.(jsonObject)
	if !ok {
		return nil, invalid("%s must be an object", where)
	}
	return found, nil
}

func objects(value any, where string) ([]jsonObject, error) {
	if value == nil {
		return nil, nil
	}
	items, ok := value.([]any)
	if !ok {
		return nil, invalid("%s must be an array", where)
	}
	found := make([]jsonObject, len(items))
	for i, item := range items {
		if found[i], ok = item.(jsonObject); !ok {
			return nil, invalid("%s[%d] must be an object", where, i)
		}
	}
	return found, nil
}

// text reads an optional string; ok is false when it is absent.
func text(fields jsonObject, key, where string) (value string, ok bool, err error) {
	raw, present := fields[key]
	if !present || raw == nil {
		return "", false, nil
	}
	if value, ok = raw.(string); !ok {
		return "", false, invalid("%s[%q] must be a string", where, key)
	}
	return value, true, nil
}

// memoryOf reads resources.<kind>.memory; ok is false when it is absent.
func memoryOf(resources jsonObject, kind, where string) (q quantity, ok bool, err error) {
	fields, err := object(resources[kind], where+"."+kind)
	if err != nil || fields["memory"] == nil {
		return quantity{}, false, err
	}
	var raw string
	switch value := fields["memory"].(type) {
	case string:
		raw = value
	case float64: // a JSON number: the API server accepts one
		raw = strconv.FormatFloat(value, 'f', -1, 64)
	default:
		return quantity{}, false, invalid("%s.%s.memory must be a quantity string", where, kind)
	}
	if q, err = parseQuantity(raw); err != nil {
		return quantity{}, false, invalid("%s.%s.memory %v", where, kind, err)
	}
	return q, true, nil
}

// pointerEscapes escapes a JSON pointer's reference token (RFC 6901).
var pointerEscapes = strings.NewReplacer("~", "~0", "/", "~1")

func pointer(parts ...any) string {
	var b strings.Builder
	for _, part := range parts {
		b.WriteByte('/')
		switch token := part.(type) {
		case int:
			b.WriteString(strconv.Itoa(token))
		case string:
			b.WriteString(pointerEscapes.Replace(token))
		}
	}
	return b.String()
}

// appendOp appends item to obj[key], creating the array when missing (JSON patch cannot).
func appendOp(obj jsonObject, key string, item any, base string) op {
	if obj[key] == nil {
		return op{"add", base + "/" + key, []any{item}}
	}
	return op{"add", base + "/" + key + "/-", item}
}

type pod struct {
	raw         jsonObject
	annotations jsonObject
	spec        jsonObject
}

func mutate(raw jsonObject) (mutation, error) {
	metadata, err := object(raw["metadata"], "metadata")
	if err != nil {
		return mutation{}, err
	}
	annotations, err := object(metadata["annotations"], "metadata.annotations")
	if err != nil {
		return mutation{}, err
	}
	labels, err := object(metadata["labels"], "metadata.labels")
	if err != nil {
		return mutation{}, err
	}
	spec, err := object(raw["spec"], "spec")
	if err != nil {
		return mutation{}, err
	}
	requested, asked, err := text(annotations, sizeAnnotation, "metadata.annotations")
	if err != nil || !asked {
		return mutation{}, err
	}
	if skip, err := leftAlone(annotations, labels, spec); err != nil || skip {
		return mutation{}, err
	}
	size, err := parseQuantity(requested)
	if err != nil {
		return mutation{denial: fmt.Sprintf("%s %v; write a size such as 8Gi", sizeAnnotation, err)}, nil
	}
	if size.bytes == 0 {
		return mutation{}, nil
	}
	return inject(pod{raw, annotations, spec}, size)
}

func leftAlone(annotations, labels, spec jsonObject) (bool, error) {
	if _, done, err := text(annotations, statusAnnotation, "metadata.annotations"); err != nil || done {
		return true, err
	}
	if optOut, _, err := text(labels, optOutLabel, "metadata.labels"); err != nil || optOut == "disabled" {
		return true, err
	}
	if spec["hostIPC"] == true {
		return true, nil
	}
	osField, err := object(spec["os"], "spec.os")
	if err != nil || osField["name"] == "windows" {
		return true, err
	}
	_, mirror := annotations[mirrorAnnotation]
	return mirror, nil
}

type mounted struct {
	kind  string
	index int
	name  string
}

func inject(p pod, size quantity) (mutation, error) {
	name, err := freeVolumeName(p.spec)
	if err != nil {
		return mutation{}, err
	}
	sizeText := formatBytes(size.bytes, size.format)
	mountOps, done, kept, err := mountOps(p.spec, name)
	if err != nil {
		return mutation{}, err
	}
	if len(done) == 0 {
		return mutation{warnings: keptWarning(kept)}, nil
	}
	ops := []op{appendOp(p.spec, "volumes", volume{name, emptyDir{"Memory", sizeText}}, "/spec")}
	ops = append(ops, mountOps...)
	containers, _ := objects(p.spec["containers"], "spec.containers") // read by mountOps
	charged := chargedIndex(containers, p.annotations, done)
	status := injectionStatus{Size: sizeText, Volume: name, Mounted: []string{}, Charged: []string{}}
	for _, m := range done {
		status.Mounted = append(status.Mounted, m.name)
	}
	var chargeCount int64
	if charged >= 0 {
		chargeCount = 1
		where := fmt.Sprintf("spec.containers[%d].resources", charged)
		more, err := charge(containers[charged]["resources"], pointer("spec", "containers", charged, "resources"), where, size)
		if err != nil {
			return mutation{}, err
		}
		ops = append(ops, more...)
		status.Charged = append(status.Charged, containers[charged]["name"].(string))
		if grows, err := hasMemory(p.spec["resources"], "spec.resources"); err != nil {
			return mutation{}, err
		} else if grows { // pod-level resources bound the containers' sum: they grow too
			more, err := charge(p.spec["resources"], "/spec/resources", "spec.resources", size)
			if err != nil {
				return mutation{}, err
			}
			ops = append(ops, more...)
		}
	}
	statusOp, err := annotationOp(p, status)
	if err != nil {
		return mutation{}, err
	}
	ops = append(ops, statusOp)
	warnings := keptWarning(kept)
	limit, bounded, err := podMemoryLimit(p.spec, size.bytes*chargeCount)
	if err != nil {
		return mutation{}, err
	}
	if bounded && limit < size.bytes {
		warnings = append(warnings, fmt.Sprintf(
			"%s will be capped at %s by the pod's memory limit (asked %s)",
			mountPath, formatBytes(limit, binarySI), sizeText))
	}
	return mutation{ops: ops, warnings: short(warnings)}, nil
}

func hasMemory(resources any, where string) (bool, error) {
	fields, err := object(resources, where)
	if err != nil {
		return false, err
	}
	for _, kind := range []string{"limits", "requests"} {
		values, err := object(fields[kind], where+"."+kind)
		if err != nil {
			return false, err
		}
		if values["memory"] != nil {
			return true, nil
		}
	}
	return false, nil
}

func freeVolumeName(spec jsonObject) (string, error) {
	volumes, err := objects(spec["volumes"], "spec.volumes")
	if err != nil {
		return "", err
	}
	taken := make(map[string]bool, len(volumes))
	for i, v := range volumes {
		name, ok := v["name"].(string)
		if !ok {
			return "", invalid("spec.volumes[%d].name must be a string", i)
		}
		taken[name] = true
	}
	name := volumeName
	for suffix := 1; taken[name]; suffix++ {
		// A volume name is a DNS label: at most 63 characters, suffix included.
		tail := strconv.Itoa(suffix)
		head := volumeName
		if len(head) > 62-len(tail) {
			head = head[:62-len(tail)]
		}
		name = strings.TrimRight(head, "-") + "-" + tail
	}
	return name, nil
}

// mountOps mounts the volume in every init container and container without something at
// /dev/shm; it returns the ops, the containers mounted and the names of those that keep theirs.
func mountOps(spec jsonObject, name string) (ops []op, done []mounted, kept []string, err error) {
	item := volumeMount{name, mountPath}
	for _, kind := range []string{"initContainers", "containers"} {
		containers, err := objects(spec[kind], "spec."+kind)
		if err != nil {
			return nil, nil, nil, err
		}
		for i, c := range containers {
			where := fmt.Sprintf("spec.%s[%d]", kind, i)
			containerName, ok := c["name"].(string)
			if !ok {
				return nil, nil, nil, invalid("%s.name must be a string", where)
			}
			uses, err := usesPath(c, where)
			if err != nil {
				return nil, nil, nil, err
			}
			if uses {
				kept = append(kept, containerName)
				continue
			}
			ops = append(ops, appendOp(c, "volumeMounts", item, pointer("spec", kind, i)))
			done = append(done, mounted{kind, i, containerName})
		}
	}
	return ops, done, kept, nil
}

func usesPath(container jsonObject, where string) (bool, error) {
	for _, field := range [][2]string{{"volumeMounts", "mountPath"}, {"volumeDevices", "devicePath"}} {
		items, err := objects(container[field[0]], where+"."+field[0])
		if err != nil {
			return false, err
		}
		for i, item := range items {
			found, ok := item[field[1]].(string)
			if !ok {
				return false, invalid("%s.%s[%d].%s must be a string", where, field[0], i, field[1])
			}
			if path.Clean(found) == mountPath {
				return true, nil
			}
		}
	}
	return false, nil
}

// chargedIndex is the container in spec.containers whose memory grows, or -1 for none.
func chargedIndex(containers []jsonObject, annotations jsonObject, done []mounted) int {
	wanted, _ := annotations[defaultAnnotation].(string)
	chosen := 0
	for i, c := range containers {
		if c["name"] == wanted {
			chosen = i
			break
		}
	}
	first := -1
	for _, m := range done {
		if m.kind != "containers" {
			continue
		}
		if m.index == chosen {
			return chosen
		}
		if first < 0 {
			first = m.index
		}
	}
	return first
}

// charge adds size bytes to the memory request and limit of the resources at path. A limit
// grows only when there is one; a missing request becomes the limit plus the size when a
// limit exists, the size otherwise.
func charge(resources any, at, where string, size quantity) ([]op, error) {
	if resources == nil {
		return []op{{"add", at, map[string]any{"requests": map[string]string{"memory": formatBytes(size.bytes, size.format)}}}}, nil
	}
	fields, err := object(resources, where)
	if err != nil {
		return nil, err
	}
	limit, hasLimit, err := memoryOf(fields, "limits", where)
	if err != nil {
		return nil, err
	}
	request, hasRequest, err := memoryOf(fields, "requests", where)
	if err != nil {
		return nil, err
	}
	var ops []op
	if hasLimit {
		ops = append(ops, op{"replace", at + "/limits/memory", limit.plus(size.bytes)})
	}
	if hasRequest {
		return append(ops, op{"replace", at + "/requests/memory", request.plus(size.bytes)}), nil
	}
	newRequest := formatBytes(size.bytes, size.format)
	if hasLimit {
		newRequest = limit.plus(size.bytes)
	}
	if fields["requests"] == nil {
		return append(ops, op{"add", at + "/requests", map[string]string{"memory": newRequest}}), nil
	}
	return append(ops, op{"add", at + "/requests/memory", newRequest}), nil
}

func annotationOp(p pod, status injectionStatus) (op, error) {
	value, err := marshal(status)
	if err != nil {
		return op{}, err
	}
	text := string(value)
	switch {
	case p.raw["metadata"] == nil:
		return op{"add", "/metadata", map[string]any{"annotations": map[string]string{statusAnnotation: text}}}, nil
	case p.annotations == nil:
		return op{"add", "/metadata/annotations", map[string]string{statusAnnotation: text}}, nil
	}
	return op{"add", pointer("metadata", "annotations", statusAnnotation), text}, nil
}

// podMemoryLimit is the memory the kubelet caps the pod at (bounded false: no cap): the
// pod-level limit, else, when every container has a limit, the larger of the running
// containers' sum (restartable init containers included) and the largest init container.
// added is what the patch adds to the limits that exist.
func podMemoryLimit(spec jsonObject, added int64) (limit int64, bounded bool, err error) {
	podLevel, err := object(spec["resources"], "spec.resources")
	if err != nil {
		return 0, false, err
	}
	if q, ok, err := memoryOf(podLevel, "limits", "spec.resources"); err != nil || ok {
		return q.bytes + added, ok, err
	}
	var running, initPeak int64
	limited := false
	for _, kind := range []string{"initContainers", "containers"} {
		containers, err := objects(spec[kind], "spec."+kind)
		if err != nil {
			return 0, false, err
		}
		for i, c := range containers {
			where := fmt.Sprintf("spec.%s[%d].resources", kind, i)
			resources, err := object(c["resources"], where)
			if err != nil {
				return 0, false, err
			}
			q, ok, err := memoryOf(resources, "limits", where)
			if err != nil || !ok {
				return 0, false, err
			}
			limited = true
			if kind == "containers" || c["restartPolicy"] == "Always" {
				running += q.bytes
			} else if q.bytes > initPeak {
				initPeak = q.bytes
			}
		}
	}
	if !limited {
		return 0, false, nil
	}
	if running+added > initPeak {
		return running + added, true, nil
	}
	return initPeak, true, nil
}

func keptWarning(kept []string) []string {
	switch len(kept) {
	case 0:
		return nil
	case 1:
		return []string{fmt.Sprintf("container %s already mounts %s; kept as it is", kept[0], mountPath)}
	}
	return []string{fmt.Sprintf("containers %s already mount %s; kept as they are", strings.Join(kept, ", "), mountPath)}
}

// short keeps warnings as the API server wants them: a handful, each short.
func short(warnings []string) []string {
	if len(warnings) > maxWarnings {
		warnings = warnings[:maxWarnings]
	}
	for i, w := range warnings {
		if utf8.RuneCountInString(w) > maxWarningRunes {
			warnings[i] = string([]rune(w)[:maxWarningRunes-1]) + "…"
		}
	}
	return warnings
}
