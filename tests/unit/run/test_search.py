"""bigtrain's Optuna sweeper (hydra/sweeper=bigtrain_optuna): pruning, failed trials, resuming
a killed search, the results; and `bigtrain runs` / `bigtrain plot` on what it leaves."""

from __future__ import annotations

import json

import pytest
from helpers import read_json

pytestmark = pytest.mark.slow

SEARCH = ["fit", "-m", "hydra/sweeper=bigtrain_optuna", "debug=smoke", "model=mlp",
          "trainer.progress=none", "logger=[]"]


def trials(sweep):
    """Each trial dir's summary, by trial number."""
    return {int(d.name): read_json(d / "summary.json") for d in sweep.iterdir()
            if d.is_dir() and d.name.isdigit() and (d / "summary.json").exists()}


def study(sweep):
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    storage = JournalStorage(JournalFileBackend(str(sweep / "optuna.journal")))
    return optuna.load_study(study_name="bigtrain", storage=storage)


def test_search_prunes_bad_trials_and_survives_a_failing_one(cli, tmp_path):
    # rigged: lr 1e-6 cannot move val_loss, 0.01 can; batch 5000 fails (larger than the data)
    r = cli(*SEARCH, "hydra.sweeper.sampler=grid", "hydra.sweeper.n_trials=7",
            "hydra.sweeper.pruner=median", "hydra.sweeper.pruner_startup=1",
            "optim.lr=choice(0.01,0.000001)", "trainer.seed=choice(0,1,2)",
            "trainer.batch_size=choice(32,5000)", "trainer.eval_every=1",
            "hydra.sweep.dir=search")
    assert r.returncode == 0, r.stderr[-3000:]
    sweep = tmp_path / "search"
    states = {t.number: t.state.name for t in study(sweep).trials}
    assert len(states) == 7
    assert "PRUNED" in states.values() and "FAIL" in states.values()
    assert "COMPLETE" in states.values()
    runs = trials(sweep)
    pruned = [n for n, s in runs.items() if s["status"] == "pruned"]
    assert pruned and all(states[n] == "PRUNED" for n in pruned)
    assert all(runs[n]["steps"] < 6 for n in pruned)  # stopped early
    best = read_json(sweep / "optuna_best.json")
    assert best["trials"]["complete"] + best["trials"]["pruned"] + best["trials"]["fail"] == 7
    assert best["best"][0]["params"]["optim.lr"] == "0.01"
    assert "best trial" in r.stdout + r.stderr
    # the sweep table hides the trial identity, shows the searched values and the statuses
    rows = json.loads((sweep / "sweep_summary.json").read_text())
    assert {row["status"] for row in rows} >= {"completed", "pruned", "failed"}
    assert not any(k.startswith("trainer.trial") for k in rows[0]["overrides"])

    # runs and plot on the search dir
    table = cli("runs", "search", "--sort", "val_loss", "--where", "status=completed")
    assert table.returncode == 0, table.stderr
    assert "completed" in table.stdout and "pruned" not in table.stdout
    plot = cli("plot", "search")
    assert plot.returncode == 0, plot.stderr
    from matplotlib.image import imread

    for name in ("plot_loss.png", "plot_loss_params.png"):
        img = imread(sweep / name)
        assert img.shape[0] >= 300 and img.shape[1] >= 400  # a real figure, not a stub


def test_killed_search_resumes_without_losing_or_repeating_a_trial(cli, tmp_path):
    args = [*SEARCH, "hydra.sweeper.sampler=random", "hydra.sweeper.n_trials=3",
            "optim.lr=tag(log,interval(0.001,0.1))", "hydra.sweep.dir=search"]
    killed = cli(*args, env={"BIGTRAIN_FAULTS": "sigkill@step=4"})
    assert killed.returncode == -9  # the first trial died at step 4 (checkpoint at 3)
    sweep = tmp_path / "search"
    assert [t.state.name for t in study(sweep).trials] == ["RUNNING"]
    again = cli(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    out = again.stdout + again.stderr
    assert "resuming the study" in out and "at step 3" in out
    done = study(sweep).trials
    assert [t.number for t in done] == [0, 1, 2]
    assert all(t.state.name == "COMPLETE" for t in done)
    assert sorted(trials(sweep)) == [0, 1, 2]
    # the resumed trial kept its parameters; a finished search run again adds nothing
    third = cli(*args)
    assert third.returncode == 0 and len(study(sweep).trials) == 3


def test_multi_objective_search_reports_the_pareto_front(cli, tmp_path):
    r = cli(*SEARCH, "hydra.sweeper.sampler=random", "hydra.sweeper.n_trials=3",
            "hydra.sweeper.objectives=[monitor,wall_s]",
            "hydra.sweeper.directions=[auto,minimize]",
            "optim.lr=tag(log,interval(0.001,0.1))", "hydra.sweep.dir=search")
    assert r.returncode == 0, r.stderr[-3000:]
    best = read_json(tmp_path / "search" / "optuna_best.json")
    assert best["directions"] == ["minimize", "minimize"]
    assert best["best"] and all(len(b["values"]) == 2 for b in best["best"])


@pytest.mark.parametrize("args, message", [
    (["hydra.sweeper.sampler=annealing", "optim.lr=choice(0.1,0.01)"],
     "hydra.sweeper.sampler: 'annealing' is not valid"),
    (["hydra.sweeper.sampler=grid", "optim.lr=interval(0.1,0.2)"], "grid needs choice"),
    ([], "the search space is empty"),
    (["hydra.sweeper.objectives=[monitor,wall_s]", "hydra.sweeper.directions=[auto,minimize]",
      "hydra.sweeper.pruner=median", "optim.lr=choice(0.1,0.01)"], "single-objective"),
], ids=["sampler", "grid-interval", "empty", "multi-pruned"])
def test_search_mistakes_are_usage_errors(cli, args, message):
    r = cli(*SEARCH, *args, "hydra.sweep.dir=bad")
    assert r.returncode == 2 and message in r.stderr, r.stderr[-2000:]
    assert "Traceback" not in r.stderr


def test_hparams_search_preset_sets_up_the_sweeper(cli):
    r = cli("fit", "hparams_search=digits", "--cfg", "hydra")
    assert r.returncode == 0, r.stderr
    assert "bigtrain_optuna_sweeper.sweeper.OptunaSweeper" in r.stdout
    assert "pruner: median" in r.stdout and "optim.lr: tag(log, interval(1e-4, 3e-2))" in r.stdout


def test_search_with_the_joblib_launcher_runs_trials_in_parallel(cli, tmp_path):
    r = cli(*SEARCH, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
            "hydra.sweeper.n_jobs=2", "hydra.sweeper.n_trials=4", "hydra.sweeper.sampler=random",
            "hydra.sweeper.pruner=median", "hydra.sweeper.pruner_startup=2",
            "optim.lr=tag(log,interval(0.000001,0.01))", "trainer.eval_every=1",
            "hydra.sweep.dir=search", fresh=True)  # see test_sweeps' joblib test
    assert r.returncode == 0, r.stderr[-3000:]
    done = study(tmp_path / "search").trials
    assert [t.number for t in done] == [0, 1, 2, 3]
    assert all(t.state.is_finished() for t in done)
    # the jobs ran in worker processes and still reported to the shared journal study
    assert all(t.intermediate_values for t in done)
    assert sorted(trials(tmp_path / "search")) == [0, 1, 2, 3]


@pytest.mark.parametrize("sampler", ["tpe", "cmaes"])
def test_samplers_run_a_search(cli, tmp_path, sampler):
    r = cli(*SEARCH, f"hydra.sweeper.sampler={sampler}", "hydra.sweeper.n_trials=3",
            "optim.lr=tag(log,interval(0.001,0.1))", "optim.weight_decay=interval(0.0,0.01)",
            "hydra.sweep.dir=search")
    assert r.returncode == 0, r.stderr[-2000:]
    done = study(tmp_path / "search").trials
    assert len(done) == 3 and all(t.state.name == "COMPLETE" for t in done)
    assert len({t.params["optim.lr"] for t in done}) == 3  # the sampler proposed new points
