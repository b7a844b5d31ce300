"""The webhook's reading of a pod, as named CEL variables of the admission policies
(docs/policy-engine.md): what is asked, where it applies, which size, which containers.

Owns: `SETTINGS` (the settings a policy reads, its first variables: the chart writes them from
its values, `webhook.admission_policy` from `Policy`) and `reading()`, the variables after
them, each one step of `webhook.mutation.plan`, evaluated lazily by the kube-apiserver. The
patch and the messages built on them are `webhook.admission_patch`'s. Pure: the standard
library and the webhook's pure modules.
"""

from __future__ import annotations

from webhook.admission_cel import (
    bind,
    format_bytes,
    format_of,
    literal,
    normpath,
    percent_of,
    percent_parts,
    shown,
    size_problem,
    to_bytes,
)
from webhook.mutation import (
    DEFAULT_CONTAINER_ANNOTATION,
    INJECTION_LABEL,
    LEFT_ALONE,  # the webhook's own words for the pods it leaves alone
    MIRROR_ANNOTATION,
)
from webhook.namespaces import (
    DEFAULT_SIZE_ANNOTATION,
    DEFAULTS_LABEL,
    DEFAULTS_LABEL_VALUE,
    MAX_SIZE_ANNOTATION,
)
from webhook.policy import Reason
from webhook.status import STATUS_ANNOTATION

Steps = list[tuple[str, str]]  # (variable name, CEL expression)

# The settings variables, in order; the policies hold them as CEL literals.
SETTINGS = (
    "annotationKey",
    "defaultSize",
    "maxSize",
    "memoryPolicy",
    "onInvalid",
    "volumeName",
    "mountPath",
    "namespacePolicy",
)
V = "variables."
# The status annotation exactly as the engines write it: compact JSON, fields in order, names
# without escapes. Anything else is treated as absent (docs/policy-engine.md).
_NAMES = r'("[^"\\]*"(,"[^"\\]*")*)?'
STATUS_SHAPE = (
    r'^\{"size":"[^"\\]*","volume":"[a-z0-9]([-a-z0-9]*[a-z0-9])?",'
    rf'"mounted":\[{_NAMES}\],"charged":\[{_NAMES}\]\}}$'
)


def reading() -> Steps:
    """The variables after the settings, in dependency order."""
    return [*_pod(), *_texts(), *_status(), *_namespace(), *_size(), *_mounts()]


def _pod() -> Steps:
    labelled = (
        f"namespaceObject.metadata.?labels.orValue({{}})[?{literal(DEFAULTS_LABEL)}]"
        f".orValue('') == {literal(DEFAULTS_LABEL_VALUE)}"
    )
    return [
        ("annotations", "object.metadata.?annotations.orValue({})"),
        ("labels", "object.metadata.?labels.orValue({})"),
        ("requested", f"{V}annotations[?{V}annotationKey]"),
        ("requestedText", f"{V}requested.orValue('')"),
        ("containers", "object.spec.?containers.orValue([])"),
        ("initContainers", "object.spec.?initContainers.orValue([])"),
        ("volumeNames", "object.spec.?volumes.orValue([]).map(v, v.?name.orValue(''))"),
        # Which pods the webhook configuration sends: its matchConditions and its entry for
        # namespaces with a default, as one condition.
        (
            "reaches",
            f"{V}requested.hasValue() || {V}defaultSize != ''"
            f" || ({V}namespacePolicy && {labelled})",
        ),
        ("leftAlone", _left_alone()),
    ]


def _left_alone() -> str:
    """The webhook's reason for leaving a pod alone, '' when it does not."""
    reasons = [
        (f"{V}labels[?{literal(INJECTION_LABEL)}].orValue('') == 'disabled'", Reason.LABEL_OPT_OUT),
        ("object.spec.?hostIPC.orValue(false) == true", Reason.HOST_IPC),
        ("object.spec.?os.?name.orValue('') == 'windows'", Reason.WINDOWS),
        (f"{literal(MIRROR_ANNOTATION)} in {V}annotations", Reason.MIRROR_POD),
    ]
    chain = "".join(f"{test} ? {literal(LEFT_ALONE[reason])} : " for test, reason in reasons)
    return chain + "''"


def _texts() -> Steps:
    """The texts read as sizes, and what `parse_size` says of each (one template for all)."""
    text = f"{V}statusText"
    texts = f"[{V}requestedText, {V}statusSize, {V}nsDefaultText, {V}nsMaxText]"
    return [
        ("statusText", f"{V}annotations[?{literal(STATUS_ANNOTATION)}].orValue('')"),
        ("statusShape", f"{text}.matches(r'{STATUS_SHAPE}')"),
        ("statusSize", f"{V}statusShape ? {text}.split('\"')[3] : ''"),
        ("statusVolume", f"{V}statusShape ? {text}.split('\"')[7] : ''"),
        (
            "nsAnnotations",
            f"{V}namespacePolicy ? namespaceObject.metadata.?annotations.orValue({{}}) : {{}}",
        ),
        ("nsDefaultText", f"{V}nsAnnotations[?{literal(DEFAULT_SIZE_ANNOTATION)}].orValue('')"),
        ("nsMaxText", f"{V}nsAnnotations[?{literal(MAX_SIZE_ANNOTATION)}].orValue('')"),
        # '' for a size, else the webhook's message: the requested size's is shown.
        ("sizeChecks", f"{texts}.map(t, {size_problem('t', V + 'annotationKey')})"),
    ]


def _status() -> Steps:
    text = f"{V}statusText"
    return [
        (
            "statusValid",
            f"{V}statusShape && {V}statusVolume.size() <= 63 && {V}sizeChecks[1] == ''",
        ),
        # The raw JSON inside the brackets: a reinvocation writes them back extended.
        (
            "statusMounted",
            f"{text}.substring({text}.indexOf('\"mounted\":[') + 11,"
            f" {text}.indexOf('],\"charged\":['))",
        ),
        (
            "statusCharged",
            f"{text}.substring({text}.indexOf('],\"charged\":[') + 13, {text}.size() - 2)",
        ),
    ]


def _namespace() -> Steps:
    default, ceiling = f"{V}nsDefaultText", f"{V}nsMaxText"
    binary = format_bytes(V + "maxBytes", "'BinarySI'")
    percent_ok, _, _ = percent_parts(default)
    smaller = (
        f"{V}nsMaxBytes >= 0 && ({V}clusterMaxBytes < 0 || {V}nsMaxBytes < {V}clusterMaxBytes)"
    )
    return [
        # A namespace annotation that does not parse is ignored, as the webhook's cache does.
        (
            "nsDefaultValid",
            f"{default} != '' && ({default}.endsWith('%') ? {percent_ok} : {V}sizeChecks[2] == '')",
        ),
        (
            "nsMaxBytes",
            f"{ceiling} != '' && {V}sizeChecks[3] == ''"
            f" ? {bind(to_bytes(ceiling), lambda b: f'({b} == 0 ? -1 : {b})')} : -1",
        ),
        ("clusterMaxBytes", f"{V}maxSize == '' ? -1 : {to_bytes(V + 'maxSize')}"),
        ("maxBytes", f"{smaller} ? {V}nsMaxBytes : {V}clusterMaxBytes"),
        ("ceilingOf", f"{smaller} ? ' set for namespace ' + namespaceObject.metadata.name : ''"),
        ("ceilingText", f"{V}maxBytes >= 0 ? {binary} : ''"),
        ("defaultText", f"{V}nsDefaultValid ? {default} : {V}defaultSize"),
    ]


def _capped(count: str) -> str:
    return f"({V}maxBytes >= 0 && {count} > {V}maxBytes ? {V}maxBytes : {count})"


def _size() -> Steps:
    asked, default = f"{V}requested.hasValue()", f"{V}defaultText"
    percent = f"{default}.endsWith('%')"
    _, numerator, denominator = percent_parts(default)
    basis = f"{V}basisText.value()"
    named = f"{V}annotations[?{literal(DEFAULT_CONTAINER_ANNOTATION)}]"
    exceeds = (
        f"{shown(V + 'requestedText', V + 'annotationKey')} + ' exceeds the maximum of '"
        f" + {V}ceilingText + {V}ceilingOf + '; write at most ' + {V}ceilingText"
    )
    over = f"{V}maxBytes >= 0 && {V}requestedBytes > {V}maxBytes"
    return [
        (
            "requestedProblem",
            f"{asked} ? {V}sizeChecks[0] : ''",
        ),
        (
            "requestedBytes",
            f"{asked} && {V}requestedProblem == '' ? {to_bytes(V + 'requestedText')} : 0",
        ),
        ("invalid", f"{V}requestedProblem != '' ? {V}requestedProblem : {over} ? {exceeds} : ''"),
        # The charged container: the one kubectl.kubernetes.io/default-container names, else
        # the first; -1 when there is none.
        (
            "defaultIndex",
            f"{V}containers.size() == 0 ? -1 : {named}.hasValue()"
            f" ? (lists.range({V}containers.size()).filter(i,"
            f" {V}containers[i].?name.orValue('') == {named}.value()) + [0])[0] : 0",
        ),
        (
            "basisText",
            f"{V}defaultIndex < 0 ? optional.none() : [{V}containers[{V}defaultIndex]]"
            ".map(c, c.?resources.?limits[?'memory'].or(c.?resources.?requests[?'memory']))[0]",
        ),
        (
            "percentSize",
            f"{V}basisText.hasValue()"
            f" ? {bind(percent_of(to_bytes(basis), numerator, denominator), _capped)} : 0",
        ),
        (
            "hasSize",
            f"{asked} ? ({V}invalid == '' && {V}requestedBytes != 0) : {default} == '' ? false"
            f" : {percent} ? {V}percentSize > 0 : true",
        ),
        (
            "sizeBytes",
            f"{asked} ? {V}requestedBytes : {percent} ? {V}percentSize"
            f" : {bind(to_bytes(default), _capped)}",
        ),
        (
            "sizeFormat",
            f"{asked} ? {format_of(V + 'requestedText')} : {percent} ? {format_of(basis)}"
            f" : {V}maxBytes >= 0 && {to_bytes(default)} > {V}maxBytes ? 'BinarySI'"
            f" : {format_of(default)}",
        ),
        # A percentage is carved out of the memory the pod has: nothing is charged.
        ("carved", f"!{asked} && {percent}"),
        ("sizeText", format_bytes(V + "sizeBytes", V + "sizeFormat")),
    ]


def _uses(container: str) -> str:
    """Whether a container already has a mount or a block device at the mount path."""
    found = []
    for field, key, item in (
        ("volumeMounts", "mountPath", "m"),
        ("volumeDevices", "devicePath", "d"),
    ):
        path = normpath(f"{item}.?{key}.orValue('')")
        found.append(f"{container}.?{field}.orValue([]).exists({item}, {path} == {V}normMount)")
    return " || ".join(found)


def _mounts() -> Steps:
    init, regular = f"{V}initContainers", f"{V}containers"
    return [
        ("normMount", normpath(V + "mountPath")),
        ("initUses", f"{init}.map(c, {_uses('c')})"),
        ("uses", f"{regular}.map(c, {_uses('c')})"),
        ("initMounted", f"lists.range({init}.size()).filter(i, !{V}initUses[i])"),
        ("mounted", f"lists.range({regular}.size()).filter(i, !{V}uses[i])"),
        ("mountCount", f"{V}initMounted.size() + {V}mounted.size()"),
        (
            "mountedNames",
            f"{V}initMounted.map(i, {init}[i].name) + {V}mounted.map(i, {regular}[i].name)",
        ),
        (
            "keptNames",
            f"lists.range({init}.size()).filter(i, {V}initUses[i]).map(i, {init}[i].name)"
            f" + lists.range({regular}.size()).filter(i, {V}uses[i]).map(i, {regular}[i].name)",
        ),
    ]
