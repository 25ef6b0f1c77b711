"""The ground floor: what every other package may use and nothing here imports from them.

Errors (`errors`), the schema base of every config group (`schema`), the registries that tie
options to builders (`registry`), files written atomically (`files`), the console
(`console`), TensorFlow imported without its start-up chatter (`tensorflow_start`), what
watches a run (`hooks`, `timing`), fault injection for tests (`faults`) and XLA's compilation
cache (`xla_cache`). No TensorFlow at import.
"""
