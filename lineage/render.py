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


def draw(graph: Graph, path: Path) -> Path:
    """A picture of the graph (PNG or SVG, by the file's suffix), laid out left to right by depth."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt
    import networkx as nx

    g = nx.DiGraph()
    g.add_nodes_from(graph.labels)
    g.add_edges_from(graph.edges)
    # A cycle can only come from a resolver re-emitting a model; fall back to plain order then.
    generations = list(nx.topological_generations(g)) if nx.is_directed_acyclic_graph(g) else [list(g)]
    for depth, nodes in enumerate(generations):
        for node in nodes:
            g.nodes[node]["layer"] = depth
    positions = nx.multipartite_layout(g, subset_key="layer")
    width = max(6.0, 2.2 * len(generations))
    height = max(3.0, 1.1 * max((len(n) for n in generations), default=1))
    fig, ax = plt.subplots(figsize=(width, height))
    nx.draw_networkx_edges(g, positions, ax=ax, arrows=True, arrowsize=12, edge_color="#888888",
                           node_size=2500, min_source_margin=25, min_target_margin=25)
    for node, (x, y) in positions.items():
        is_execution = node.startswith("e:")
        failed = graph.states.get(node) == "FAILED"
        ax.text(x, y, graph.labels[node], ha="center", va="center", fontsize=8,
                bbox=dict(boxstyle="round,pad=0.4" if is_execution else "ellipse,pad=0.3",
                          fc="#ffd6d6" if failed else ("#dbe9ff" if is_execution else "#f2f2f2"),
                          ec="#c00000" if failed else "#444444"))
    ax.set_title(graph.title, fontsize=10)
    ax.axis("off")
    ax.margins(0.12)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
