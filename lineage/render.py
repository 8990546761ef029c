"""Showing runs, traces and diffs: text tables, Graphviz DOT, Mermaid, and PNG/SVG pictures."""

import dataclasses
import json
from pathlib import Path
from typing import Any

from tabulate import tabulate

from lineage.query import ArtifactInfo, ExecutionInfo, RunInfo, Trace, flatten

# Artifact properties worth a column; the rest is in --json.
KEY_PROPERTIES = ("span", "version", "split_names", "blessed", "pushed", "pushed_destination", "pushed_version")


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


def _when(run: RunInfo) -> str:
    return run.start.strftime("%Y-%m-%d %H:%M:%S") if run.start else "-"


def runs_table(runs: list[RunInfo]) -> str:
    rows = []
    for run in runs:
        counts: dict[str, list[str]] = {}
        for e in run.executions:
            counts.setdefault(e.state, []).append(e.node_id)
        # Counts for the usual states; names where something needs a look (FAILED, RUNNING, ...).
        nodes = ", ".join(
            f"{state} {len(names)}" if state in ("COMPLETE", "CACHED") else f"{state}: {' '.join(names)}"
            for state, names in sorted(counts.items())
        )
        rows.append([run.run_id, run.pipeline, _when(run), f"{run.seconds:.1f}", run.state, nodes])
    return tabulate(rows, headers=["run", "pipeline", "started (UTC)", "seconds", "state", "nodes"])


def _artifact_line(artifact: ArtifactInfo) -> str:
    keys = {k: artifact.properties[k] for k in KEY_PROPERTIES if k in artifact.properties}
    extra = " " + " ".join(f"{k}={_short(v, 40)}" for k, v in keys.items()) if keys else ""
    return f"{artifact.label()} {artifact.uri}{extra}"


def execution_block(execution: ExecutionInfo, reused: int = 0) -> str:
    head = f"{execution.label()}  [{execution.component_type}]  {execution.state}  {execution.seconds:.1f}s"
    if reused:
        head += f"  (outputs reused by {reused} cached execution{'s' if reused > 1 else ''})"
    lines = [head]
    for key, value in execution.code().items():
        lines.append(f"    code      {key} = {value}")
    for key, value in sorted(flatten(execution.properties, lists=False).items()):
        if key not in execution.code() and not key.endswith(".code_fingerprint"):
            lines.append(f"    parameter {key} = {_short(value)}")
    for direction, io in (("in ", execution.inputs), ("out", execution.outputs)):
        for key, artifacts in sorted(io.items()):
            for artifact in artifacts:
                lines.append(f"    {direction} {key}: {_artifact_line(artifact)}")
    return "\n".join(lines)


def show_text(run: RunInfo) -> str:
    head = f"Run {run.run_id} of {run.pipeline}: {run.state}, started {_when(run)} UTC, {run.seconds:.1f}s"
    return "\n\n".join([head] + [execution_block(e) for e in run.executions])


def trace_text(trace: Trace) -> str:
    direction = "fed" if trace.downstream else "came from"
    head = f"What {trace.root.label()} ({trace.root.uri}) {direction}:"
    ordered = sorted(trace.executions.values(), key=lambda e: (e.start, e.id), reverse=not trace.downstream)
    return "\n\n".join([head] + [execution_block(e, trace.cached_reuses.get(e.id, 0)) for e in ordered])


def diff_text(diff: dict[str, Any]) -> str:
    parts = [f"Run A: {diff['run_a']}\nRun B: {diff['run_b']}"]
    sections = [
        ("Node states", "states", ["node", "a", "b"]),
        ("Parameters", "parameters", ["node", "parameter", "a", "b"]),
        ("Input artifacts", "inputs", ["node", "input", "a", "b"]),
        ("Evaluation metrics", "metrics", ["metric", "a", "b"]),
    ]
    def cell(section: str, value: Any) -> str:
        if section == "inputs":  # URIs differ at their end (the artifact's id directory)
            return ", ".join(uri if len(uri) <= 50 else "..." + uri[-47:] for uri in value) or "-"
        return _short(value, 50)

    for title, key, columns in sections:
        if diff[key] is None:
            parts.append(f"{title}: not compared")
            continue
        rows = [[cell(key, row[c]) if c in ("a", "b") else row[c] for c in columns] for row in diff[key]]
        parts.append(f"{title}: " + ("no difference" if not rows else "\n" + tabulate(rows, headers=columns)))
    return "\n\n".join(parts)


# --- graphs ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class Graph:
    """Nodes are "e:<id>" (executions) and "a:<id>" (artifacts); edges follow the data."""

    title: str
    labels: dict[str, str]
    states: dict[str, str]
    edges: list[tuple[str, str]]


def graph_of_run(run: RunInfo) -> Graph:
    labels, states, edges = {}, {}, set()
    for execution in run.executions:
        node = f"e:{execution.id}"
        labels[node], states[node] = f"{execution.node_id}\n{execution.state}", execution.state
        for io, outgoing in ((execution.inputs, False), (execution.outputs, True)):
            for artifacts in io.values():
                for artifact in artifacts:
                    labels[f"a:{artifact.id}"] = f"{artifact.type}\n#{artifact.id}"
                    edges.add((node, f"a:{artifact.id}") if outgoing else (f"a:{artifact.id}", node))
    return Graph(f"run {run.run_id}", labels, states, sorted(edges))


def graph_of_trace(trace: Trace) -> Graph:
    labels = {f"a:{a.id}": f"{a.type}\n#{a.id}" for a in trace.artifacts.values()}
    states = {}
    for e in trace.executions.values():
        labels[f"e:{e.id}"] = f"{e.node_id}\n{e.state}"
        states[f"e:{e.id}"] = e.state
    return Graph(f"{'downstream' if trace.downstream else 'upstream'} of {trace.root.label()}", labels, states, trace.edges)


def to_dot(graph: Graph) -> str:
    lines = ["digraph lineage {", f"  label={json.dumps(graph.title)};", "  rankdir=LR;"]
    for node, label in sorted(graph.labels.items()):
        shape = "box" if node.startswith("e:") else "ellipse"
        color = ', color="red"' if graph.states.get(node) == "FAILED" else ""
        lines.append(f'  "{node}" [label={json.dumps(label)}, shape={shape}{color}];')
    lines += [f'  "{a}" -> "{b}";' for a, b in graph.edges]
    return "\n".join(lines + ["}"]) + "\n"


def to_mermaid(graph: Graph) -> str:
    ident = lambda node: node.replace(":", "_")  # noqa: E731
    lines = ["flowchart LR"]
    for node, label in sorted(graph.labels.items()):
        text = label.replace("\n", "<br/>").replace('"', "'")
        lines.append(f'  {ident(node)}["{text}"]' if node.startswith("e:") else f'  {ident(node)}(["{text}"])')
    lines += [f"  {ident(a)} --> {ident(b)}" for a, b in graph.edges]
    return "\n".join(lines) + "\n"


# The picture's size: as wide as a report page (about 1,100 CSS pixels; the report embeds it at
# its own size, so its labels are read at FONT_SIZE points at 100 dpi, not scaled down), with at
# most COLUMNS nodes side by side; a deeper graph grows down the page, never wider.
WIDTH_INCHES = 10.4
DPI = 100
COLUMNS = 4
FONT_SIZE = 10
ROW_INCHES = 0.85
LABEL_WIDTH = 24  # characters; longer names are broken after a '_' or '.'


def _wrap(label: str, width: int = LABEL_WIDTH) -> str:
    lines = []
    for line in label.split("\n"):
        while len(line) > width:
            cut = max(line.rfind("_", 1, width), line.rfind(".", 1, width))
            cut = cut + 1 if cut > 0 else width
            lines.append(line[:cut])
            line = line[cut:]
        lines.append(line)
    return "\n".join(lines)


def _rows(g) -> list[list[str]]:
    """Nodes by depth, top to bottom; a depth with more than COLUMNS nodes takes several rows.
    Within a row, nodes are ordered by where their neighbours are (fewer crossing edges)."""
    import networkx as nx

    # A cycle can only come from a resolver re-emitting a model; fall back to plain order then.
    generations = list(nx.topological_generations(g)) if nx.is_directed_acyclic_graph(g) else [sorted(g)]
    if len(generations) > 1:
        # A node without inputs (a resolver, the raw data's ExampleGen) sits just above what it
        # feeds, not at the top with every other source.
        depth = {node: i for i, nodes in enumerate(generations) for node in nodes}
        for node in generations[0]:
            if g.out_degree(node):
                depth[node] = min(depth[s] for s in g.successors(node)) - 1
        generations = [sorted(n for n in g if depth[n] == i) for i in range(len(generations))]
        generations = [nodes for nodes in generations if nodes]
    rows = [sorted(nodes)[i:i + COLUMNS] for nodes in generations for i in range(0, len(nodes), COLUMNS)]
    x = {node: j - (len(row) - 1) / 2 for row in rows for j, node in enumerate(row)}

    def reorder(row: list[str], neighbours) -> None:
        def key(node: str) -> tuple[float, str]:
            known = [x[n] for n in neighbours(node)]
            return (sum(known) / len(known) if known else x[node], node)

        row.sort(key=key)
        for j, node in enumerate(row):
            x[node] = j - (len(row) - 1) / 2

    # Barycentre sweeps: down by each node's inputs, then up by what it feeds.
    for _ in range(3):
        for row in rows[1:]:
            reorder(row, g.predecessors)
        for row in reversed(rows[:-1]):
            reorder(row, g.successors)
    return rows


def draw(graph: Graph, path: Path) -> Path:
    """A picture of the graph (PNG or SVG, by the file's suffix), laid out top to bottom by depth:
    WIDTH_INCHES wide whatever the graph, so its labels stay legible on a page."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt
    import networkx as nx

    g = nx.DiGraph()
    g.add_nodes_from(graph.labels)
    g.add_edges_from(graph.edges)
    rows = _rows(g)
    positions = {node: (j - (len(row) - 1) / 2, -i) for i, row in enumerate(rows) for j, node in enumerate(row)}
    fig, ax = plt.subplots(figsize=(WIDTH_INCHES, 0.7 + ROW_INCHES * max(len(rows), 1)))
    boxes = {}
    for node, (x, y) in positions.items():
        is_execution = node.startswith("e:")
        failed = graph.states.get(node) == "FAILED"
        boxes[node] = ax.text(
            x, y, _wrap(graph.labels[node]), ha="center", va="center", fontsize=FONT_SIZE, zorder=3,
            bbox=dict(boxstyle="round,pad=0.35" if is_execution else "round,pad=0.35,rounding_size=0.9",
                      fc="#ffd6d6" if failed else ("#dbe9ff" if is_execution else "#f2f2f2"),
                      ec="#c00000" if failed else "#444444"))
    ax.set_xlim(-COLUMNS / 2, COLUMNS / 2)
    ax.set_ylim(-len(rows) + 0.5, 0.5)
    ax.set_title(graph.title, fontsize=FONT_SIZE + 1)
    ax.axis("off")
    fig.subplots_adjust(left=0.01, right=0.99, top=1 - 0.45 / fig.get_figheight(), bottom=0.01)
    fig.canvas.draw()  # places the label boxes, which the arrows below start and end at
    for a, b in graph.edges:
        ax.annotate("", xy=positions[b], xytext=positions[a], zorder=2,
                    arrowprops=dict(arrowstyle="-|>", color="#888888", linewidth=1, shrinkA=1, shrinkB=1,
                                    patchA=boxes[a].get_bbox_patch(), patchB=boxes[b].get_bbox_patch(),
                                    connectionstyle="arc3,rad=0.08"))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
