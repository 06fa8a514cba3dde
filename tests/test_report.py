"""`ttsgraph report`: the HTML and PNGs of a run and of a bench, built from real run stores that
the executor filled (scripted backend), checked for content, self-containment and consistency
with the Pareto front and the latency model."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ttsgraph import selection
from ttsgraph.cli import app
from ttsgraph.executor import Executor, summarize
from ttsgraph.graph import Graph, Node, chain, parallel, single
from ttsgraph.llm.base import BackendBase, Completion, Message, SamplingParams
from ttsgraph.models import load_pool
from ttsgraph.pareto import pareto_front
from ttsgraph.report import build_report, find_runs, load_run
from ttsgraph.search.base import Evaluation
from ttsgraph.store import RunStore
from ttsgraph.tasks.arithmetic import ArithmeticTask

SMOL, GEMMA = "smollm2-135m", "gemma-3-270m"
SPEED = {SMOL: (0.02, 800.0, 75.0), GEMMA: (0.05, 400.0, 50.0)}  # overhead s, prefill tok/s, decode tok/s
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class SpeedBackend(BackendBase):
    """Scripted answers whose reported seconds follow SPEED (no sleeping). A model is right on an
    item unless a hash of (model, question, sample) says otherwise, so graphs differ in accuracy."""

    def __init__(self, task: ArithmeticTask, wrong_rate: dict[str, int]) -> None:
        self.answers = {i.question: i.answer for s in ("search", "test") for i in task.items(s)}
        self.wrong_rate = wrong_rate

    async def complete(self, model: str, messages: list[Message], params: SamplingParams,
                       sample: int = 0) -> Completion:
        text = messages[-1]["content"]
        q, a = next((q, a) for q, a in self.answers.items() if q in text)
        h = zlib.crc32(f"{model}|{q}|{sample}".encode())
        value = int(a) + (1 if h % 10 < self.wrong_rate[model] else 0)
        reply = " ".join(["work"] * (2 + h % 9)) + f" Answer: {value}"
        p = sum(len(m["content"].split()) for m in messages)
        c = len(reply.split())
        o, pre, dec = SPEED[model]
        return Completion(reply, p, c, o + p / pre + c / dec)


GRAPHS = [
    single(SMOL),
    single(GEMMA),
    parallel(2, SMOL, output_model=GEMMA),
    chain(2, SMOL, output_model=GEMMA),
    parallel(3, [SMOL, GEMMA, SMOL], output_model=GEMMA),
    Graph([Node("n1", SMOL), Node("n2", GEMMA), Node("n3", SMOL, "fuser"), Node("out", GEMMA)],
          [("n1", "n3"), ("n2", "n3"), ("n3", "out"), ("n1", "out")], "out"),
]


@dataclass
class MadeRun:
    path: Path
    trials: list[Evaluation]
    selected: Graph
    agent_entries: int


def make_run(path: Path, optimizer: str = "agent-reinforce", seed: int = 0, graphs: list[Graph] = GRAPHS,
             batch: int = 4, agent: bool = True, test: bool = True) -> MadeRun:
    """A real run directory: every graph scored by the executor on search items and stored with its
    traces, two per iteration; agent exchanges logged; the study's decision (`best`) recorded and
    its graph scored on test items."""
    task = ArithmeticTask(seed=5 + seed, size=30)
    pool = load_pool("local")
    backend = SpeedBackend(task, {SMOL: 4 + seed, GEMMA: 3})
    ex = Executor(backend, pool, task, SamplingParams(max_tokens=32), concurrency=4)
    search = task.items("search")
    store = RunStore.create(path)
    store.set_config("optimizer", optimizer)
    store.set_config("seed", seed)
    store.set_config("task", task.name)
    store.set_config("objective", "accuracy-latency")
    evals: list[Evaluation] = []
    entries = 0
    try:
        for k, g in enumerate(graphs):
            items = search[(k * batch) % len(search):][:batch]
            results = asyncio.run(ex.run_items(g, items))
            s = summarize(results, g, pool, task)
            ok = [r for r in results if r.error is None]
            ev = Evaluation(trial=k, graph=g, accuracy=s.correct / max(1, len(ok)), utility=s.accuracy,
                            correct=s.correct, scored=len(ok), errors=s.errors, item_ids=[str(i.id) for i in items],
                            planned_units=s.planned_units, measured_units=s.measured_units or 0.0,
                            latency=sum(r.critical_path for r in ok) / len(ok))
            store.add_trial(ev, iteration=k // 2, optimizer=optimizer, seed=seed, results=results, position=k % 2)
            evals.append(ev)
            if agent and k % 2 == 0:
                store.log_agent(k // 2, "update", [{"role": "system", "content": "You design graphs."},
                                                   {"role": "user", "content": f"iteration {k // 2}: improve <b>"}],
                                f"Graph: next one <script>alert({k})</script>", seconds=1.5 + k, ok=k != 2,
                                error="unparsable reply" if k == 2 else None)
                entries += 1
        decision = selection.choose(store.trials(), "best")  # what the study records at its end
        store.set_config(selection.CONFIG_KEY, decision.to_dict())
        best = store.trial(decision.trial).graph
        if test:
            results = asyncio.run(ex.run_items(best, task.items("test")[:10]))
            store.set_test_result(best.canonical_hash(), "test", summarize(results, best, pool, task))
    finally:
        store.close()
    return MadeRun(path, evals, best, entries)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> MadeRun:
    return make_run(tmp_path_factory.mktemp("report") / "run")


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bench") / "bench"
    for opt, graphs in (("agent-reinforce", GRAPHS), ("random", GRAPHS[::-1][:4])):
        for seed in (0, 1):
            make_run(root / "runs" / f"{opt}-seed{seed}", opt, seed, graphs, agent=opt == "agent-reinforce",
                     test=False)
    return root


@pytest.fixture(scope="module")
def built(run_dir: MadeRun, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One report of the run, shared by the tests that only inspect it."""
    out = tmp_path_factory.mktemp("built") / "r" / "report.html"
    return build_report(run_dir.path, out), out


def embedded_images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def test_load_run_reads_back_what_was_stored(run_dir: MadeRun) -> None:
    data = load_run(run_dir.path)
    assert [t.accuracy for t in data.trials] == [e.accuracy for e in run_dir.trials]
    assert all(len(data.traces[t.id]) == 4 for t in data.trials)
    assert data.config["objective"] == "accuracy-latency"
    sel = data.selected()
    assert sel is not None and sel.graph_hash == run_dir.selected.canonical_hash()
    summary = data.test_summary()
    assert summary is not None and summary["items"] == 10 and len(summary["ci"]) == 2


def test_run_report_is_self_contained_and_complete(run_dir: MadeRun, built) -> None:  # type: ignore[no-untyped-def]
    res, out = built
    page = out.read_text()
    assert res.kind == "run" and res.html_path == out and res.trials == len(GRAPHS)
    # offline: no remote or relative resources, no scripts
    assert not re.search(r"(?:src|href)=\"(?!data:)", page)
    assert "http://" not in page and "https://" not in page and "@import" not in page
    assert "<script" not in page  # the agent's reply is escaped, not executed
    assert "&lt;script&gt;alert(0)&lt;/script&gt;" in page
    # every figure embedded as a real PNG and written beside the HTML
    images = embedded_images(page)
    assert len(images) == len(res.png_paths) == 5
    assert all(img.startswith(PNG_MAGIC) and len(img) > 2000 for img in images)
    assert {p.name for p in res.png_paths} == {f"report-{n}.png" for n in ("graph", "search", "flops", "latency",
                                                                           "models")}
    assert all(p.parent == out.parent and p.read_bytes() in images for p in res.png_paths)
    for heading in ("Selected graph", "Search", "Accuracy, FLOPs and latency", "Latency: measured vs estimated",
                    "Per-model cost", "Trials", "Agent transcript", "Configuration"):
        assert f"<h2>{heading}" in page, heading
    assert page.count("<details>") == run_dir.agent_entries
    assert "unparsable reply" in page


def test_trial_table_marks_the_pareto_front_and_the_selection(run_dir: MadeRun, built) -> None:  # type: ignore[no-untyped-def]
    res, out = built
    page = out.read_text()
    front = pareto_front(run_dir.trials)  # accuracy up, planned units down, latency down
    assert sorted(f["trial"] for f in res.front) == sorted(
        i + 1 for i, e in enumerate(run_dir.trials) if any(e is f for f in front))
    assert 0 < len(front) < len(GRAPHS)  # the fixture has dominated trials, so the check can fail
    on_front_ids = {i + 1 for i, e in enumerate(run_dir.trials) if any(e is f for f in front)}
    selected_id = res.selected[0]["trial"]
    trial_section = page.split("<h2>Trials</h2>")[1].split("</table>")[0]
    rows = re.findall(r'<tr class="([a-z]*)"><td class="">(\d+)</td>', trial_section)
    assert len(rows) == len(GRAPHS)
    for cls, tid in rows:
        expected = "sel" if int(tid) == selected_id else "front" if int(tid) in on_front_ids else ""
        assert cls == expected, (tid, cls)
    sel = res.selected[0]
    assert sel["graph_hash"] == run_dir.selected.canonical_hash()
    assert sel["accuracy"] == max(e.accuracy for e in run_dir.trials)


def test_estimated_latency_is_beside_the_measured_one(run_dir: MadeRun, built) -> None:  # type: ignore[no-untyped-def]
    res, out = built
    speeds = res.speeds
    assert set(speeds) == {SMOL, GEMMA}
    assert speeds[SMOL]["decode_tps"] == pytest.approx(75.0, rel=1e-3)
    assert speeds[GEMMA]["prefill_tps"] == pytest.approx(400.0, rel=1e-3)
    data = load_run(run_dir.path)
    from ttsgraph.report import add_estimates

    add_estimates([data])
    for t in data.trials:
        assert t.estimated_latency is not None and t.latency_mean is not None
        assert t.estimated_latency == pytest.approx(t.latency_mean, rel=0.5), t.graph
    # and the ordering of fast and slow graphs is kept
    by_measured = sorted(data.trials, key=lambda t: t.latency_mean)
    by_estimate = sorted(data.trials, key=lambda t: t.estimated_latency)
    assert by_measured[0].id == by_estimate[0].id and by_measured[-1].id == by_estimate[-1].id
    assert "Median relative error of the estimate" in out.read_text()


def test_bench_report_has_a_curve_and_a_row_per_optimizer(bench_dir: Path, tmp_path: Path) -> None:
    assert len(find_runs(bench_dir)) == 4
    res = build_report(bench_dir, tmp_path / "bench.html")
    page = (tmp_path / "bench.html").read_text()
    assert res.kind == "bench" and len(res.runs) == 4 and res.trials == 2 * len(GRAPHS) + 2 * 4
    assert len(res.selected) == 4
    opt_table = page.split("<h2>Optimizers</h2>")[1].split("</table>")[0]
    assert opt_table.count("<tr") == 1 + 2  # header + one row per optimizer
    assert ">agent-reinforce<" in opt_table and ">random<" in opt_table
    # one selected-graph drawing per run + search + two trade-offs + models
    assert len(embedded_images(page)) == len(res.png_paths) == 4 + 4
    assert all(p.exists() for p in res.png_paths)


def test_report_of_a_run_without_trials(tmp_path: Path) -> None:
    RunStore.create(tmp_path / "empty").close()
    res = build_report(tmp_path / "empty")
    page = res.html_path.read_text()
    assert res.html_path == tmp_path / "empty" / "report.html"
    assert res.trials == 0 and res.selected == [] and "No trials stored yet" in page
    assert all(img.startswith(PNG_MAGIC) for img in embedded_images(page))


runner = CliRunner()


def test_cli_json_is_one_object(run_dir: MadeRun, tmp_path: Path) -> None:
    out = tmp_path / "cli.html"
    r = runner.invoke(app, ["report", str(run_dir.path), "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["html"] == str(out) and out.exists() and data["kind"] == "run"
    assert len(data["pngs"]) == 5 and data["trials"] == len(GRAPHS)
    assert data["selected"][0]["graph_hash"] == run_dir.selected.canonical_hash()


def test_cli_table_output(run_dir: MadeRun, tmp_path: Path) -> None:
    r = runner.invoke(app, ["report", str(run_dir.path), "-o", str(tmp_path / "x.html")])
    assert r.exit_code == 0, r.output
    assert "Pareto front" in r.stdout and "x.html" in r.stdout


@pytest.mark.parametrize("setup", ["missing", "not-a-run", "corrupt"])
def test_cli_bad_input_is_a_named_error(tmp_path: Path, setup: str) -> None:
    target = tmp_path / "target"
    if setup == "not-a-run":
        target.mkdir()
        (target / "notes.txt").write_text("hello")
    elif setup == "corrupt":
        target.mkdir()
        (target / "run.sqlite").write_bytes(b"this is not sqlite" * 100)
    r = runner.invoke(app, ["report", str(target), "--json"])
    assert r.exit_code == 2
    assert str(target) in r.output and "error" in r.output.lower()
    assert str(target) in json.loads(r.stdout)["error"]  # --json: the error is the one JSON object


def test_report_on_a_real_bench_directory(tmp_path: Path) -> None:
    """`run_bench` (scripted backend) lays out its run directories and bench.json; the report reads
    them all: a row per optimizer, the bench's baselines and paired comparisons, test CIs per run."""
    from ttsgraph.benchmark import BenchConfig, run_bench
    from ttsgraph.tasks import load_task

    task = load_task("arithmetic", seed=9, size=30)
    config = BenchConfig(task="arithmetic", task_options={"seed": 9, "size": 30}, budget=6.0,
                         optimizers=("random", "tpe"), seeds=2, iterations=2, batch=2, test_limit=5,
                         out=tmp_path / "bench", max_tokens=16, classical="off")
    result = asyncio.run(run_bench(config, fake_backend=SpeedBackend(task, {SMOL: 4, GEMMA: 3})))
    res = build_report(tmp_path / "bench")
    page = res.html_path.read_text()
    assert res.kind == "bench" and sorted(res.runs) == ["random-seed0", "random-seed1", "tpe-seed0", "tpe-seed1"]
    assert res.html_path == tmp_path / "bench" / "report.html" and all(p.exists() for p in res.png_paths)
    opt_table = page.split("<h2>Optimizers</h2>")[1].split("</table>")[0]
    assert opt_table.count("<tr") == 3
    bench_table = page.split("Test results of the bench")[1].split("</table>")[0]
    for row in result.rows:
        assert f">{row.name}<" in bench_table
    assert "Paired difference" in page and f"<b>{result.best_baseline}</b>" in page
    # each run's selected graph carries the bench's test score with a Wilson interval
    data = {r.name: r for r in (load_run(d) for d in find_runs(tmp_path / "bench"))}
    from ttsgraph.report import attach_bench_tests, load_bench_summary

    attach_bench_tests(list(data.values()), load_bench_summary(tmp_path / "bench") or {})
    for row in result.rows:
        for run in row.runs:
            summ = data[Path(run.run_dir).name].test_summary()
            assert summ is not None and summ["items"] == 5
            assert summ["accuracy"] == pytest.approx(sum(run.test_correct) / 5)
            assert summ["ci"][0] <= summ["accuracy"] <= summ["ci"][1]


def test_graph_layout_puts_every_edge_left_to_right() -> None:
    from ttsgraph.graph import fully_connected, parallel_chains, tree
    from ttsgraph.plots import graph_layout

    for g in (fully_connected([SMOL, GEMMA] * 3, GEMMA), parallel_chains(3, 2, SMOL, GEMMA), tree(2, 2, SMOL),
              GRAPHS[-1]):
        pos = graph_layout(g)
        assert set(pos) == set(g.ids)
        assert all(pos[u][0] < pos[v][0] for u, v in g.edges)
        assert pos[g.output][0] == max(x for x, _ in pos.values())
        assert len(set(pos.values())) == len(pos)  # no two nodes on one spot


def test_a_graph_scored_twice_is_one_point_of_the_front(tmp_path: Path) -> None:
    """The study pools every trial of one graph; the report's front does the same, so both trials
    of a repeated graph are marked alike and the JSON lists them under one graph."""
    made = make_run(tmp_path / "run", graphs=[single(SMOL), parallel(2, SMOL, GEMMA), single(SMOL)], batch=3,
                    agent=False, test=False)
    res = build_report(made.path)
    data = load_run(made.path)
    repeated = [t for t in data.trials if t.graph_hash == single(SMOL).canonical_hash()]
    assert len(repeated) == 2
    pooled_acc = sum(t.correct for t in repeated) / sum(t.scored for t in repeated)
    # per trial, the second single(SMOL) trial is dominated by the first (same accuracy and cost,
    # slower); pooled, the graph is one point, on the front as the cheapest graph
    latencies = [t.latency_mean for t in repeated]
    assert latencies[0] != latencies[1]  # the pooling matters: one of the two alone would be dominated
    entry = next(g for g in res.front if g["graph_hash"] == repeated[0].graph_hash)
    assert [x["trial"] for x in entry["trials"]] == [t.id for t in repeated]
    assert entry["accuracy"] == pytest.approx(pooled_acc) and entry["items"] == 6
    page = res.html_path.read_text()
    trial_section = page.split("<h2>Trials</h2>")[1].split("</table>")[0]
    classes = dict((int(tid), cls) for cls, tid in re.findall(r'<tr class="([a-z]*)"><td class="">(\d+)</td>',
                                                               trial_section))
    sel = res.selected[0]
    expected = "sel" if sel["graph_hash"] == repeated[0].graph_hash else "front"
    assert [classes[t.id] for t in repeated] == [expected, expected]  # the graph's trials are marked alike
    assert classes[sel["trial"]] == "sel" and sel["items"] == (6 if expected == "sel" else 3)


def test_runs_with_the_same_directory_name_are_told_apart(tmp_path: Path) -> None:
    for parent in ("a", "b"):
        make_run(tmp_path / "many" / parent / "run", graphs=GRAPHS[:2], batch=2, agent=False, test=False)
    res = build_report(tmp_path / "many")
    assert sorted(res.runs) == ["a/run", "b/run"]
    assert sorted(s["run"] for s in res.selected) == ["a/run", "b/run"]
    assert len({p.name for p in res.png_paths}) == len(res.png_paths)  # one graph PNG per run, none overwritten


def test_report_while_the_search_still_writes(tmp_path: Path) -> None:
    """A search holds the run open for writing (and its lock); the report reads alongside it, and a
    trial stored afterwards shows up in the next report."""
    made = make_run(tmp_path / "live", graphs=GRAPHS[:2], batch=2, agent=False, test=False)
    writer = RunStore.open(made.path)
    try:
        first = build_report(made.path)
        assert first.trials == 2
        ev = made.trials[0]
        writer.add_trial(ev, iteration=5, optimizer="agent-reinforce", seed=0, results=[], position=0)
        second = build_report(made.path)
        assert second.trials == 3
    finally:
        writer.close()
    page = second.html_path.read_text()
    assert "wall s" in page
    data = load_run(made.path)
    assert all(t.wall is not None and t.wall >= 0 for t in data.trials[:2]) and data.trials[2].wall is None


def _scored(graph: Graph, correct: int, items: int, units: float, *, candidate: bool = True,
            latency: float = 1.0) -> Evaluation:
    """A trial as the study stores it, without running anything (no traces)."""
    return Evaluation(trial=0, graph=graph, accuracy=correct / items, utility=correct / items, correct=correct,
                      scored=items, errors=0, item_ids=[f"q{k}" for k in range(items)], planned_units=units,
                      measured_units=units, latency=latency, candidate=candidate)


def _probe_run(path: Path, record: str | None = "best") -> tuple[Graph, Graph, Graph]:
    """The demo's shape: a one-item pretest probe right 1/1 (cheap, fast), then real candidates
    that scored 0 % on 14 search items (A, in two batches) and on 2 (B, dearer)."""
    probe, a, b = single(SMOL), parallel(2, SMOL, GEMMA), chain(2, SMOL, GEMMA)
    with RunStore.create(path) as store:
        store.set_config("optimizer", "agent-reinforce")
        for k, ev in enumerate([_scored(probe, 1, 1, 1.0, candidate=False, latency=0.1), _scored(a, 0, 7, 3.0),
                                _scored(a, 0, 7, 3.0), _scored(b, 0, 2, 5.0)]):
            store.add_trial(ev, iteration=k, optimizer="agent-reinforce", seed=0)
        if record is not None:
            store.set_config(selection.CONFIG_KEY, selection.choose(store.trials(), record).to_dict())
    return probe, a, b


def test_a_pretest_probe_is_never_the_curve_front_or_selection(tmp_path: Path) -> None:
    """Regression: the report's search curve and Pareto front showed a one-item pretest probe at
    100 % while the study selected a graph that scored 0 % on 14 search items."""
    probe, a, _ = _probe_run(tmp_path / "run")
    res = build_report(tmp_path / "run")
    assert probe.canonical_hash() not in {g["graph_hash"] for g in res.front}
    assert a.canonical_hash() in {g["graph_hash"] for g in res.front}
    (curve,) = res.curves.values()
    assert curve and all(acc == 0.0 for _, acc in curve)  # the probe's 1/1 is never drawn
    assert curve[0][0] == 1 + 7 and curve[-1][0] == 1 + 7 + 7 + 2  # its item is spent, though
    (sel,) = res.selected
    assert sel["graph_hash"] == a.canonical_hash() and not sel["provisional"]
    assert (sel["accuracy"], sel["correct"], sel["items"], sel["errors"]) == (0.0, 0, 14, 0)
    page = res.html_path.read_text()
    rows = dict((int(t), c) for c, t in re.findall(r'<tr class="([a-z]*)"><td class="">(\d+)</td>',
                                                   page.split("<h2>Trials</h2>")[1].split("</table>")[0]))
    assert rows == {1: "probe", 2: "sel", 3: "sel", 4: ""}


def test_the_report_shows_the_recorded_decision_not_its_own(tmp_path: Path) -> None:
    _, _, b = _probe_run(tmp_path / "run", record="last")  # the study was told to return the last graph
    (sel,) = build_report(tmp_path / "run").selected
    assert sel["graph_hash"] == b.canonical_hash() and sel["rule"] == "last" and sel["items"] == 2


def test_an_unfinished_run_shows_a_provisional_selection_never_a_probe(tmp_path: Path) -> None:
    _, a, _ = _probe_run(tmp_path / "run", record=None)
    (sel,) = build_report(tmp_path / "run").selected
    assert sel["provisional"] and sel["graph_hash"] == a.canonical_hash()
    with RunStore.create(tmp_path / "pretest-only") as store:
        store.add_trial(_scored(single(SMOL), 1, 1, 1.0, candidate=False), iteration=0, optimizer="x", seed=0)
    res = build_report(tmp_path / "pretest-only")
    assert res.selected == [] and res.front == [] and "no graph selected yet" in res.html_path.read_text()
