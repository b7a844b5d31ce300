"""The webhook's answer for a pod, as named CEL variables of the admission policies
(docs/policy-engine.md): the JSON patch ops, the status annotation, the warnings and the
denial, built on the reading of `webhook.admission_variables`.

Owns: `deciding()` (the variables after the reading) and the names the policies' mutation
(`ops`) and validations (`denial`, `invalidWarning`, `leftAloneWarning`, `keptWarning`,
`cappedWarning`) read. The ops are maps of `op`, `path` and `value` (`dyn`: a CEL literal
mixes no types); the mutation makes them `JSONPatch` objects, which variables cannot.
Pure: the standard library and the webhook's pure modules.
"""

from __future__ import annotations

from webhook import patches
from webhook.admission_cel import add_bytes, bind, format_bytes, literal, to_bytes
from webhook.admission_variables import Steps, V
from webhook.review import MAX_WARNING_LENGTH
from webhook.status import STATUS_ANNOTATION


def deciding() -> Steps:
    """The variables after the reading, in dependency order."""
    return [*_action(), *_volume(), *_charges(), *_status(), *_messages()]


def _op(op: str, path: str, value: str) -> str:
    return f"{{'op': dyn({literal(op)}), 'path': dyn({path}), 'value': dyn({value})}}"


def _action() -> Steps:
    return [
        # '' (nothing to do), 'inject' (a new pod) or 'reinvoke' (one already injected).
        (
            "action",
            f"!{V}reaches ? '' : {V}statusValid ? 'reinvoke' : {V}leftAlone != '' ? ''"
            f" : {V}hasSize && {V}mountCount > 0 ? 'inject' : ''",
        ),
    ]


def _volume() -> Steps:
    def truncated(k: str) -> str:
        room = f"62 - string({k}).size()"
        end = f"({V}volumeName.size() < {room} ? {V}volumeName.size() : {room})"
        return f"{V}volumeName.substring(0, {end}).find(r'^.*[^-]')"

    candidates = (
        f"lists.range({V}volumeNames.size() + 1).map(k, k == 0 ? {V}volumeName"
        f" : {truncated('k')} + '-' + string(k))"
    )
    mount = f"{{'name': {V}volume, 'mountPath': {V}mountPath}}"
    mount_ops = []
    for kind, listed in (("initContainers", "initMounted"), ("containers", "mounted")):
        base = f"'/spec/{kind}/' + string(i) + '/volumeMounts'"
        whole = _op("add", base, f"[{mount}]")
        append = _op("add", f"{base} + '/-'", mount)
        empty = f"{V}{kind}[i].?volumeMounts.orValue([]).size() == 0"
        mount_ops.append(f"{V}{listed}.map(i, {empty} ? {whole} : {append})")
    volume = (
        f"{{'name': dyn({V}volume), 'emptyDir': dyn({{'medium': 'Memory', 'sizeLimit':"
        f" {V}action == 'reinvoke' ? {V}statusSize : {V}sizeText}})}}"
    )
    no_volumes = "object.spec.?volumes.orValue([]).size() == 0"
    first_volume = _op("add", "'/spec/volumes'", f"[{volume}]")
    next_volume = _op("add", "'/spec/volumes/-'", volume)
    return [
        (
            "volume",
            f"{V}action == 'reinvoke' ? {V}statusVolume"
            f" : {candidates}.filter(n, !(n in {V}volumeNames))[0]",
        ),
        (
            "addVolume",
            f"{V}action == 'inject'"
            f" || ({V}action == 'reinvoke' && !({V}statusVolume in {V}volumeNames))",
        ),
        (
            "volumeOp",
            f"{no_volumes} ? {first_volume} : {next_volume}",
        ),
        ("mountOps", " + ".join(mount_ops)),
    ]


def _charge(target: str) -> str:
    """`memory.charge` of a charge target (the path of a resources block, the block, the
    bytes to add): the ops raising its memory request and limit."""
    count = f"{target}.count"

    def ops(found: str) -> str:
        limit, request = f"{found}[0]", f"{found}[1]"

        def with_sums(sums: str) -> str:
            new = f"({limit}.hasValue() ? {sums}[0] : {format_bytes(count, V + 'sizeFormat')})"
            path = f"{target}.path"
            replace_limit = _op("replace", f"{path} + '/limits/memory'", f"{sums}[0]")
            replace_request = _op("replace", f"{path} + '/requests/memory'", f"{sums}[1]")
            add_memory = _op("add", f"{path} + '/requests/memory'", new)
            add_requests = _op("add", f"{path} + '/requests'", f"{{'memory': {new}}}")
            add_request = f"has({target}.resources.requests) ? {add_memory} : {add_requests}"
            return (
                f"({limit}.hasValue() ? [{replace_limit}] : [])"
                f" + ({request}.hasValue() ? [{replace_request}] : [{add_request}])"
            )

        sums = (
            f"[{limit}.hasValue() ? {add_bytes(f'{limit}.value()', count)} : '',"
            f" {request}.hasValue() ? {add_bytes(f'{request}.value()', count)} : '']"
        )
        return bind(sums, with_sums)

    resources = f"{target}.resources"
    return bind(f"[{resources}.?limits[?'memory'], {resources}.?requests[?'memory']]", ops)


def _target(path: str, resources: str, count: str) -> str:
    return f"{{'path': dyn({path}), 'resources': dyn({resources}), 'count': dyn({count})}}"


def _charges() -> Steps:
    container = _target(
        "'/spec/containers/' + string(i) + '/resources'",
        f"{V}containers[i].?resources.orValue({{}})",
        f"{V}sizeBytes",
    )
    pod_memory = (
        "object.spec.?resources.hasValue() && (object.spec.resources.?limits[?'memory'].hasValue()"
        " || object.spec.resources.?requests[?'memory'].hasValue())"
    )
    # Pod-level resources bound the containers' sum: they grow by every container's share.
    pod_level = _target(
        "'/spec/resources'", "object.spec.resources", f"{V}sizeBytes * {V}charged.size()"
    )
    return [
        # memory.charged_indices: the regular containers that pay for the pages.
        (
            "charged",
            f"{V}carved || {V}memoryPolicy == 'none' || {V}mounted.size() == 0 ? []"
            f" : {V}memoryPolicy == 'all' ? {V}mounted"
            f" : {V}defaultIndex in {V}mounted ? [{V}defaultIndex] : [{V}mounted[0]]",
        ),
        (
            "chargeTargets",
            f"{V}charged.map(i, {container})"
            f" + ({V}charged.size() > 0 && {pod_memory} ? [{pod_level}] : [])",
        ),
        ("chargeOps", f"{V}chargeTargets.map(t, {_charge('t')}).flatten()"),
    ]


def _quoted(names: str) -> str:
    """A CEL list of names as the inside of a compact JSON array."""
    escaped = r"n.replace('\\', '\\\\').replace('\"', '\\\"')"
    return f"{names}.map(n, '\"' + {escaped} + '\"').join(',')"


def _status() -> Steps:
    fresh = (
        f'\'{{"size":"\' + {V}sizeText + \'","volume":"\' + {V}volume'
        f' + \'","mounted":[\' + {_quoted(V + "mountedNames")}'
        f" + '],\"charged\":[' + {_quoted(V + 'chargedNames')} + ']}}'"
    )
    comma = f"({V}statusMounted != '' && {V}mountCount > 0 ? ',' : '')"
    extended = (
        f'\'{{"size":"\' + {V}statusSize + \'","volume":"\' + {V}statusVolume'
        f' + \'","mounted":[\' + {V}statusMounted + {comma} + {_quoted(V + "mountedNames")}'
        f" + '],\"charged\":[' + {V}statusCharged + ']}}'"
    )
    key = literal(STATUS_ANNOTATION)
    added = _op(
        "add",
        literal(patches.pointer("metadata", "annotations", STATUS_ANNOTATION)),
        f"{V}statusValue",
    )
    whole = _op("add", "'/metadata/annotations'", f"{{{key}: {V}statusValue}}")
    return [
        ("chargedNames", f"{V}charged.map(i, {V}containers[i].name)"),
        ("statusValue", f"{V}action == 'reinvoke' ? {extended} : {fresh}"),
        ("statusOp", f"has(object.metadata.annotations) ? {added} : {whole}"),
        (
            "ops",
            f"{V}action == 'inject'"
            f" || ({V}action == 'reinvoke' && ({V}addVolume || {V}mountCount > 0))"
            f" ? ({V}addVolume ? [{V}volumeOp] : []) + {V}mountOps"
            f" + ({V}action == 'inject' ? {V}chargeOps : []) + [{V}statusOp] : []",
        ),
    ]


def _limit(container: str) -> str:
    return f"{container}.?resources.?limits[?'memory']"


def _pod_limit() -> str:
    """`memory.pod_memory_limit` of the pod as it is now (already patched): bytes, or -1."""
    init, regular = f"{V}initContainers", f"{V}containers"
    sidecar = "c.?restartPolicy.orValue('') == 'Always'"
    limit_bytes = to_bytes(f"{_limit('c')}.value()")
    running = f"{regular}.map(c, {limit_bytes}) + {init}.filter(c, {sidecar}).map(c, {limit_bytes})"
    peaks = f"{init}.filter(c, !({sidecar})).map(c, {limit_bytes})"
    every = f"({init} + {regular}).all(c, {_limit('c')}.hasValue())"
    pod_level = "object.spec.?resources.?limits[?'memory']"
    return (
        f"{pod_level}.hasValue() ? {to_bytes(f'{pod_level}.value()')}"
        f" : ({init}.size() + {regular}.size() > 0 && {every})"
        f" ? ([({running}).sum()] + {peaks}).max() : -1"
    )


def _messages() -> Steps:
    init, regular = f"{V}initContainers", f"{V}containers"
    not_ours = []
    for listed, uses in ((init, "initUses"), (regular, "uses")):
        ours = (
            f"{listed}[i].?volumeMounts.orValue([])"
            f".exists(m, m.?name.orValue('') == {V}statusVolume)"
        )
        keeps = f"lists.range({listed}.size()).filter(i, {V}{uses}[i] && !{ours})"
        not_ours.append(f"{keeps}.map(i, {listed}[i].name)")
    nothing_mounted = f"{V}reaches && {V}leftAlone == '' && {V}hasSize && {V}mountCount == 0"
    names = f"{V}keptList"
    path = f"{V}mountPath"
    size = f"{V}statusSize"
    pending = f"{V}reaches && !{V}statusValid"
    capped = format_bytes(V + "podLimit", "'BinarySI'")
    return [
        # The containers that keep their own mount: after the mutation, those whose mount is
        # not the injected volume's; with nothing mounted, every one.
        (
            "keptList",
            f"{V}statusValid ? {' + '.join(not_ours)} : {nothing_mounted} ? {V}keptNames : []",
        ),
        (
            "keptWarning",
            f"{names}.size() == 0 ? '' : {names}.size() == 1"
            f" ? 'container ' + {names}[0] + ' already mounts ' + {path} + '; kept as it is'"
            f" : 'containers ' + {names}.join(', ') + ' already mount ' + {path}"
            " + '; kept as they are'",
        ),
        ("podLimit", _pod_limit()),
        (
            "cappedWarning",
            f"{V}statusValid && {V}podLimit >= 0 && {V}podLimit < {to_bytes(size)}"
            f" ? {path} + ' will be capped at ' + {capped}"
            f" + ' by the pod\\'s memory limit (asked ' + {size} + ')' : ''",
        ),
        ("invalidOutcome", f"{pending} && {V}leftAlone == '' ? {V}invalid : ''"),
        ("denial", f"{V}onInvalid == 'deny' ? {V}invalidOutcome : ''"),
        ("invalidWarning", f"{V}onInvalid == 'warn' ? {V}invalidOutcome : ''"),
        (
            "leftAloneWarning",
            f"{pending} && {V}leftAlone != '' && {V}requestedText != ''"
            f" ? {V}annotationKey + ' ignored: ' + {V}leftAlone : ''",
        ),
    ]


def warning(variable: str) -> str:
    """A message variable as the webhook words a warning: at most 120 characters."""
    text = V + variable
    cut = f"{text}.substring(0, {MAX_WARNING_LENGTH - 1}) + '…'"
    return f"{text}.size() > {MAX_WARNING_LENGTH} ? {cut} : {text}"
