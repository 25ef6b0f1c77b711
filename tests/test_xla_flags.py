"""XLA's vector width for bigtrain's islands (bigtrain.xla_flags): asked for on AVX-512 CPUs,
never over the user's own setting, seen by the commands and part of the compile cache's key."""

from __future__ import annotations

import json

from bigtrain import xla_cache, xla_flags

WIDE = "--xla_cpu_prefer_vector_width=512"


def _cpuinfo(tmp_path, flags: str):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: a CPU\nflags\t\t: fpu sse2 {flags}\n\n")
    return str(path)


def test_512_bit_vectors_are_asked_for_on_avx512_cpus_only(tmp_path):
    env: dict[str, str] = {}
    (tmp_path / "a").mkdir()
    avx512 = _cpuinfo(tmp_path / "a", "avx2 avx512f avx512bw")
    (tmp_path / "b").mkdir()
    avx2 = _cpuinfo(tmp_path / "b", "avx2 fma avx512_vnni_but_not_f")
    assert xla_flags.enable(env, cpuinfo=avx512) and env["XLA_FLAGS"] == WIDE
    assert not xla_flags.enable(env, cpuinfo=avx512) and env["XLA_FLAGS"] == WIDE  # once
    other = {"XLA_FLAGS": "--xla_dump_to=/tmp/d"}
    assert xla_flags.enable(other, cpuinfo=avx512)
    assert other["XLA_FLAGS"] == f"--xla_dump_to=/tmp/d {WIDE}"
    none: dict[str, str] = {}
    assert not xla_flags.enable(none, cpuinfo=avx2) and "XLA_FLAGS" not in none
    assert not xla_flags.enable(none, cpuinfo=str(tmp_path / "missing")) and not none


def test_the_users_own_width_is_left_alone(tmp_path):
    (tmp_path / "a").mkdir()
    env = {"XLA_FLAGS": "--xla_cpu_prefer_vector_width=256"}
    assert not xla_flags.enable(env, cpuinfo=_cpuinfo(tmp_path / "a", "avx512f"))
    assert env["XLA_FLAGS"] == "--xla_cpu_prefer_vector_width=256"


def test_the_compile_cache_keeps_code_of_other_flags_apart():
    assert xla_cache.machine_key({}) != xla_cache.machine_key({"XLA_FLAGS": WIDE})
    assert xla_cache.machine_key({"XLA_FLAGS": WIDE}) == xla_cache.machine_key(
        {"XLA_FLAGS": WIDE})


def test_a_command_asks_for_the_width_itself_on_this_machine(cli):
    # XLA_FLAGS empty: whatever the command reports, it set itself (a fresh interpreter: the
    # fork server's environment has this process's XLA_FLAGS)
    report = json.loads(cli("env", "--json", env={"XLA_FLAGS": ""}).stdout)
    flags = report["machine"]["XLA_FLAGS"]
    assert flags == (WIDE if xla_flags.cpu_has_avx512() else "not set")
