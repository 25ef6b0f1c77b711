"""bigtrain's measurements, run as modules from the repository root (`python -m scripts.bench`).

`scripts.harness` is what every script shares (the machine, the commit, alternation, medians,
the matmul peak, results files); `scripts.workloads` the shapes they train; `scripts.report`
renders every results file as Markdown. scripts/README.md says what each script measures.
"""
