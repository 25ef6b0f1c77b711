"""Wall time of `.ci/run` for a fresh clone of each revision given, each in a fresh venv on
this machine, one after the other: the whole run (install + the main job + install of the test
extra + the suite) and the suite alone as pytest reports it.

    python -m scripts.time_ci 352db1e HEAD      # before and after, in one run

Nothing else should run meanwhile: the suite uses every core. Each clone and venv lives in a
temporary directory that is removed afterwards; pip's download cache is shared, as on CI.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scripts import harness

SUMMARY = re.compile(r"=+ (?P<counts>.*?) in (?P<seconds>[\d.]+)s")


def time_revision(revision: str) -> dict:
    """Clone `revision` of this checkout, make a venv, run its .ci/run; what it took."""
    sha = subprocess.run(["git", "rev-parse", revision], cwd=harness.ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    scratch = Path(tempfile.mkdtemp(prefix="time_ci_"))
    try:
        clone = scratch / "bigtrain"
        subprocess.run(["git", "clone", "-q", str(harness.ROOT), str(clone)], check=True)
        subprocess.run(["git", "checkout", "-q", sha], cwd=clone, check=True)
        subprocess.run([sys.executable, "-m", "venv", str(clone / ".venv")], check=True)
        script = f"source {clone / '.venv/bin/activate'} && bash .ci/run"
        tic = time.perf_counter()
        proc = subprocess.run(["bash", "-c", script], cwd=clone, capture_output=True,
                              text=True)
        wall = time.perf_counter() - tic
        output = proc.stdout + proc.stderr
        found = SUMMARY.findall(output)
        counts, suite = (found[-1][0], float(found[-1][1])) if found else ("", None)
        return {"revision": revision, "sha": sha, "returncode": proc.returncode,
                "ci_run_s": round(wall, 1), "pytest_s": suite, "pytest_counts": counts,
                "tail": output[-1500:] if proc.returncode else ""}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = harness.arguments("time_ci", __doc__)
    parser.add_argument("revisions", nargs="+", help="git revisions of this checkout")
    args = parser.parse_args()
    run = harness.Run("time_ci", args.out)
    results = []
    for revision in args.revisions:
        results.append(time_revision(revision))
        print(f"{revision} ({results[-1]['sha'][:7]}): .ci/run {results[-1]['ci_run_s']} s, "
              f"pytest {results[-1]['pytest_s']} s ({results[-1]['pytest_counts']}), "
              f"exit {results[-1]['returncode']}", flush=True)
        run.write({"runs": results}, rows=[
            {"revision": r["revision"], "commit": r["sha"][:7], ".ci/run s": r["ci_run_s"],
             "pytest s": r["pytest_s"], "tests": r["pytest_counts"], "exit": r["returncode"]}
            for r in results])
    print(f"results: {run.path}")


if __name__ == "__main__":
    main()
