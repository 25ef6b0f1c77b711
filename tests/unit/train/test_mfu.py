"""Seeing where the time goes: live MFU (peaks, the cached CPU benchmark, FLOPs per example),
the profiler preset (debug=profile) and the keys' mistakes."""

from __future__ import annotations

import json

import pytest
from helpers import read_json

from bigtrain.strategy import peaks


def test_known_gpu_and_tpu_peaks():
    assert peaks.gpu_peak("NVIDIA H100 80GB HBM3", "bf16") == 989e12
    assert peaks.gpu_peak("NVIDIA H100 PCIe", "bf16") == 756e12  # before the SXM entry
    assert peaks.gpu_peak("NVIDIA A100-SXM4-40GB", "fp32") == 156e12  # TF32
    assert peaks.gpu_peak("Tesla V100-SXM2-16GB", "bf16") is None  # no bf16 tensor cores
    assert peaks.gpu_peak("Some Future GPU", "bf16") is None
    assert peaks.tpu_peak("v4-8") == 275e12
    assert peaks.tpu_peak("v3-8") == 123e12 / 2  # two replicas per chip
    assert peaks.tpu_peak("") is None


def test_cpu_peak_is_measured_once_then_read_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calls = []
    monkeypatch.setattr(peaks, "measure_cpu_peak", lambda p: calls.append(p) or 123e9)
    first, source = peaks.cpu_peak("fp32")
    again, cached = peaks.cpu_peak("fp32")
    assert first == again == 123e9 and calls == ["fp32"]
    assert "cached" in cached and "cached" not in source
    entry = json.loads((tmp_path / "bigtrain" / "peak_flops.json").read_text())
    assert list(entry) == [peaks.cpu_key("fp32")] and "threads=" in peaks.cpu_key("fp32")
    peaks.cpu_peak("bf16")  # another precision is another measurement
    assert calls == ["fp32", "bf16"]


def test_peak_flops_override_is_per_device():
    import tensorflow as tf

    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    assert peaks.run_peak(strategy, "fp32", 5e12) == (5e12, "strategy.peak_flops")


def test_matmul_benchmark_gives_a_plausible_rate():
    flops = peaks.measure_cpu_peak("fp32", size=128, reps=2, tries=1)
    assert 1e8 < flops < 1e14


def test_transformer_flops_count_every_matmul():
    """The count over the traced graph sees the matmuls behind the custom-gradient ops (the
    frozen graph's count had a quarter of them)."""
    from bigtrain.cli.hydra_glue import compose
    from bigtrain.config.schema import to_typed
    from bigtrain.data.spec import DatasetSpec
    from bigtrain.models import build_model
    from bigtrain.models.size import forward_flops

    seq, vocab = 32, 64
    cfg = to_typed(compose(["model=transformer", "model/size=tiny"])).model
    model = build_model(cfg, DatasetSpec("t", "lm", (seq,), "int32", vocab, 10, 1, 1))
    d, layers = cfg.d_model, cfg.num_layers
    matmuls = 2 * seq * layers * (4 * d * d + 2 * cfg.mlp_ratio * d * d)  # qkv, out, mlp
    attention = 2 * 2 * layers * seq * seq * d  # scores and weighted values
    head = 2 * seq * d * vocab
    assert forward_flops(model, (seq,), "int32") >= 0.95 * (matmuls + attention + head)


@pytest.mark.parametrize("override, key", [
    ("strategy.peak_flops=-1", "strategy.peak_flops"),
    ("trainer.profile_steps=-1", "trainer.profile_steps"),
    ("trainer.profile_start=0", "trainer.profile_start"),
])
def test_mistakes_name_the_key(override, key):
    from bigtrain.cli.hydra_glue import compose
    from bigtrain.config.schema import to_typed
    from bigtrain.core.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        to_typed(compose(["debug=profile", override]))
    assert err.value.key == key


def test_peak_flops_takes_exponent_notation():
    from bigtrain.cli.hydra_glue import compose
    from bigtrain.config.schema import to_typed

    assert to_typed(compose(["strategy.peak_flops=312e12"])).strategy.peak_flops == 312e12


def test_profile_trace_that_outlasts_the_run_is_refused(cli):
    proc = cli("validate", "debug=profile", "trainer.max_steps=12")
    assert proc.returncode == 2
    assert "trainer.profile_start" in proc.stderr and "trainer.max_steps (12)" in proc.stderr


@pytest.fixture(scope="module")
def profiled_run(tmp_path_factory):
    """`bigtrain fit debug=profile` on a tiny LM, the CPU peak pre-set in the cache (2e11)."""
    from helpers import run_cli

    root = tmp_path_factory.mktemp("profiled")
    cache = root / "cache"
    key = peaks.cpu_key("fp32")  # this test process and the run see the same CPU and threads
    (cache / "bigtrain").mkdir(parents=True)
    (cache / "bigtrain" / "peak_flops.json").write_text(json.dumps({key: {"flops": 2e11}}))
    proc = run_cli("fit", "debug=profile", "model=transformer", "model/size=tiny",
                   "dataset=synthetic", "dataset.task=lm", "dataset.vocab_size=64",
                   "dataset.seq_len=32", "dataset.num_examples=600", "strategy.precision=fp32",
                   "trainer.batch_size=8", "trainer.log_every=5", "trainer.progress=plain",
                   "logger=[]", "hydra.run.dir=run", cwd=root,
                   env={"XDG_CACHE_HOME": str(cache)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "run", proc


@pytest.mark.slow
def test_fit_records_mfu_and_writes_a_profiler_trace(profiled_run):
    """debug=profile on a tiny LM: every train record has mfu = examples/s x training FLOPs
    per example / peak, the peak read from the cache (no benchmark in the run), the summary
    has it next to tokens/s, and tb/ holds a trace of steps 11-15 that parses as an XSpace."""
    run, proc = profiled_run
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if "loss" in r]
    summary = read_json(run / "summary.json")
    flops = summary["flops"]
    assert flops["peak_flops"] == 2e11 and "cached" in flops["peak_source"]
    assert flops["precision"] == "fp32" and flops["train_flops_per_example"] > 0
    assert [r["step"] for r in train] == [5, 10, 15, 20]
    for r in train:
        assert r["flops_per_sec"] == pytest.approx(
            r["examples_per_sec"] * flops["train_flops_per_example"])
        assert r["mfu"] == pytest.approx(r["flops_per_sec"] / 2e11)
    assert summary["mfu"] == train[-1]["mfu"] and summary["tokens_per_sec"]
    assert "mfu " in proc.stderr and "%" in proc.stderr  # on the progress lines
    assert "profiling steps 11-15" in proc.stderr
    traces = list((run / "tb" / "plugins" / "profile").glob("*/*.xplane.pb"))
    assert len(traces) == 1
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace.FromString(traces[0].read_bytes())
    assert any(line.events for plane in space.planes for line in plane.lines)


@pytest.mark.slow
def test_profile_plugin_opens_the_trace(profiled_run):
    """TensorBoard's profile plugin (`pip install 'bigtrain[profile]'`) converts the trace for
    its trace viewer, which shows the compiled train loop."""
    raw_to_tool_data = pytest.importorskip("xprof.convert.raw_to_tool_data")
    run, _ = profiled_run
    paths = [str(p) for p in (run / "tb" / "plugins" / "profile").glob("*/*.xplane.pb")]
    assert "overview_page" in raw_to_tool_data.xspace_to_tool_names(paths)
    data, _ = raw_to_tool_data.xspace_to_tool_data(paths, "trace_viewer", {})
    names = {e.get("name", "") for e in json.loads(data)["traceEvents"]}
    assert any("train_loop" in n for n in names)
