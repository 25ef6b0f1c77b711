"""XLA's persistent compilation cache (bigtrain.core.xla_cache): where it goes, when it is only
read, when it is left alone, and that a second process loads what the first compiled."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import namedtuple

import pytest

from bigtrain.core import xla_cache


def test_the_cache_is_per_tensorflow_and_cpu_under_the_users_cache_dir(tmp_path):
    assert xla_cache.enable({"XDG_CACHE_HOME": str(tmp_path)}) is None  # off unless asked
    env = {"XDG_CACHE_HOME": str(tmp_path), "BIGTRAIN_XLA_CACHE": "on"}
    path = xla_cache.enable(env)
    assert path == str(tmp_path / "bigtrain" / "xla" / xla_cache.machine_key(env))
    assert os.path.isdir(path)
    assert env["TF_XLA_FLAGS"] == f"--tf_xla_persistent_cache_directory={path}"
    from importlib.metadata import version

    assert xla_cache.machine_key().startswith(f"tf{version('tensorflow')}-")
    assert xla_cache.enable(env) is None and env["TF_XLA_FLAGS"].count("persistent") == 1


def test_off_and_the_users_own_flags_are_left_alone(tmp_path):
    env = {"BIGTRAIN_XLA_CACHE": "off", "XDG_CACHE_HOME": str(tmp_path)}
    assert xla_cache.enable(env) is None and "TF_XLA_FLAGS" not in env
    own = {"TF_XLA_FLAGS": "--tf_xla_persistent_cache_directory=/elsewhere",
           "BIGTRAIN_XLA_CACHE": str(tmp_path)}
    assert xla_cache.enable(own) is None
    assert own["TF_XLA_FLAGS"] == "--tf_xla_persistent_cache_directory=/elsewhere"
    other = {"TF_XLA_FLAGS": "--tf_xla_auto_jit=0", "BIGTRAIN_XLA_CACHE": str(tmp_path)}
    path = xla_cache.enable(other)
    assert other["TF_XLA_FLAGS"] == \
        f"--tf_xla_auto_jit=0 --tf_xla_persistent_cache_directory={path}"


def test_a_full_disk_or_a_full_cache_is_only_read(tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(xla_cache.shutil, "disk_usage",
                        lambda p: usage(10 << 30, 10 << 30, xla_cache.MIN_FREE - 1))
    env = {"BIGTRAIN_XLA_CACHE": str(tmp_path)}
    xla_cache.enable(env)
    assert env["TF_XLA_FLAGS"].endswith("--tf_xla_persistent_cache_read_only=true")
    monkeypatch.undo()
    monkeypatch.setattr(xla_cache, "MAX_SIZE", 10)
    env = {"BIGTRAIN_XLA_CACHE": str(tmp_path)}
    (tmp_path / xla_cache.machine_key(env) / "entry.pb").write_bytes(b"x" * 20)
    xla_cache.enable(env)
    assert env["TF_XLA_FLAGS"].endswith("--tf_xla_persistent_cache_read_only=true")


def test_a_cache_dir_that_cannot_be_made_is_not_used(tmp_path):
    (tmp_path / "file").write_text("")
    env = {"BIGTRAIN_XLA_CACHE": str(tmp_path / "file" / "xla")}
    assert xla_cache.enable(env) is None and "TF_XLA_FLAGS" not in env


COMPILE = """
from bigtrain.core import xla_cache
print(xla_cache.enable())
import tensorflow as tf
f = tf.function(lambda a: tf.nn.softmax(a * 3.0) + tf.tanh(a), jit_compile=True)
print(float(tf.reduce_sum(f(tf.ones((4, 4))))))
"""


@pytest.mark.slow
def test_a_second_process_loads_what_the_first_compiled(tmp_path):
    env = {**os.environ, "BIGTRAIN_XLA_CACHE": str(tmp_path / "xla"),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_XLA_FLAGS", None)

    def run():
        r = subprocess.run([sys.executable, "-c", COMPILE], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return r.stdout.split()

    first = run()
    entries = [os.path.join(first[0], e) for e in os.listdir(first[0])]
    assert len(entries) == 1 and "xla_compile_cache" in entries[0]
    os.utime(entries[0], ns=(10**18, 10**18))  # a compile would write the entry anew
    assert run() == first  # same directory, same result
    assert os.listdir(first[0]) == [os.path.basename(entries[0])]
    assert os.stat(entries[0]).st_mtime_ns == 10**18  # loaded, not compiled and written


def test_code_compiled_under_other_xla_flags_is_kept_apart():
    wide = {"XLA_FLAGS": "--xla_cpu_prefer_vector_width=512"}
    assert xla_cache.machine_key({}) != xla_cache.machine_key(wide)
    assert xla_cache.machine_key(wide) == xla_cache.machine_key(dict(wide))
