"""Fuzz the YAML inputs: training configs through the parser ``graphfuse fit`` / ``graphfuse
info`` use, and ablation specs through :func:`graphfuse.ablation.spec.load_spec`.

Property: a config either parses to values that are all finite, or raises a jsonargparse /
YAML / ``ValueError`` whose message names the config file; a spec either loads (finite
override values, seeds that fit a 32-bit seed) or raises ``SpecError`` naming the spec. YAML
tags never construct objects, aliases never multiply into a huge document, and deep nesting or
bytes that are not UTF-8 give the same typed error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml
from _fuzz import check_numbers, fresh_path, fuzz_settings, mutate, mutations, reads_or_refuses, sub, whole
from hypothesis import example, given

from graphfuse.ablation.spec import SpecError, load_spec

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
BASE = CONFIGS / "synthetic-ntu" / "shiftgcn" / "quickstart.yaml"
SPEC = CONFIGS / "ablations" / "synthetic_ntu.yaml"

CANARY_TAG = b"!!python/object/apply:os.system ['echo pwned']"
BOMB = (b"a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
        b"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
        b"f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n")
#: Mutations of the issue for both kinds of YAML file.
COMMON = [
    [("empty",)],
    [("truncate", 200)],
    [("encode", "utf-16")],
    [("encode", "latin-1")],
    [("insert", 0, b"\xff")],
    [whole(b"[" * 20_000 + b"]" * 20_000)],
    [whole(b"{a: " * 20_000 + b"1" + b"}" * 20_000)],
    [whole(b"- 1\n- 2\n")],
    [whole(b"just a string")],
    [sub(rb"\n", b"\nx: " + CANARY_TAG + b"\n")],
    [sub(rb"\n", b"\nx: &r [1, *r]\n")],  # an alias inside itself
]


# ---------------------------------------------------------------------------------------------
# ablation specs


def _spec_seed() -> bytes:
    """The shipped quickstart study, its base made absolute (the copy lives elsewhere)."""
    text = SPEC.read_bytes()
    return text.replace(b"base: ../synthetic-ntu/shiftgcn/quickstart.yaml", b"base: " + str(BASE).encode())


def test_spec_seed_is_valid(fuzz_dir):
    p = fresh_path(fuzz_dir, "study.yaml")
    p.write_bytes(_spec_seed())
    spec = load_spec(p)
    assert spec.baseline == "baseline" and len(spec.variants) == 4


@fuzz_settings(max_examples=300)
@given(ops=mutations())
@example(ops=[whole(BOMB + b"name: x\nbase: " + str(BASE).encode()
                    + b"\nbaseline: v\nvariants: {v: {trainer.max_epochs: *g}}\n")])
def test_ablation_spec(fuzz_dir, ops):
    path = fresh_path(fuzz_dir, "study.yaml")
    path.write_bytes(mutate(_spec_seed(), ops))
    try:
        spec = reads_or_refuses(lambda: load_spec(path), path, errors=(SpecError,))
        if spec is not None:
            check_numbers(spec.to_dict())
            assert all(0 <= s < 2**32 for s in spec.seeds), spec.seeds
    finally:
        path.unlink()


SPEC_SPECIFIC = [
    [sub(rb"(?<=model.init_args.lr: )0.05", v)] for v in (b".nan", b".inf", b"-.inf", b"1e400", b"1e39")
] + [
    [sub(rb"(?<=seeds: \[)0", b"99999999999999999999")],
    [sub(rb"(?<=seeds: \[)0", b"-1")],
    [sub(rb"(?<=seeds: \[)0", b"2.5")],
    [sub(rb"(?<=clip_len: )32", b"99999999999999999999")],
    [sub(rb"(?<=name: )synthetic-ntu-quickstart", b"../../etc")],
    [sub(rb"(?<=base: )\S+", b"/nonexistent.yaml")],
    [sub(rb"(?<=batch_32:)", b" " + CANARY_TAG)],
    [sub(rb"(?<=description: )>-", b"'" + b"A" * (1 << 20) + b"'")],
] + COMMON
for _ops in SPEC_SPECIFIC:
    test_ablation_spec = example(ops=_ops)(test_ablation_spec)


# ---------------------------------------------------------------------------------------------
# training configs (`graphfuse fit -c` / `graphfuse info -c`)


@pytest.fixture(scope="module")
def fit_parser():
    """graphfuse's own ``fit`` parser (LightningCLI + jsonargparse, errors raised, not exited)."""
    from graphfuse.ablation.spec import _graphfuse_parser

    return _graphfuse_parser()


def _parse(parser, path: Path):
    """Parse ``graphfuse fit -c PATH`` exactly as GraphfuseCLI does (its parse_arguments)."""
    from graphfuse.engine import GraphfuseCLI

    cli = GraphfuseCLI.__new__(GraphfuseCLI)  # parse only: nothing is instantiated
    GraphfuseCLI.parse_arguments(cli, parser, ["fit", "-c", str(path)])
    return cli.config


CONFIG_ERRORS = (argparse.ArgumentError, yaml.YAMLError, ValueError, FileNotFoundError)


def test_config_seed_is_valid(fit_parser, fuzz_dir):
    p = fresh_path(fuzz_dir, "quickstart.yaml")
    p.write_bytes(BASE.read_bytes())
    cfg = _parse(fit_parser, p)
    assert cfg.fit.model.init_args.lr == 0.025


CONFIG_SPECIFIC = [
    [sub(rb"(?<=lr: )0.025", v)] for v in (b".nan", b".inf", b"1e400", b"-.inf")
] + [
    [sub(rb"(?<=max_epochs: )10", b"99999999999999999999")],
    [sub(rb"(?<=max_epochs: )10", b"2.5")],
    [sub(rb"(?<=clip_len: )48", b"-1")],
    [sub(rb"max_epochs", b"max_epochz")],  # an unknown key
    [sub(rb"(?<=lr: )0.025", b"abc")],  # a wrong type
    [sub(rb"(?<=lr: )0.025", CANARY_TAG)],
] + COMMON


@fuzz_settings(max_examples=120)
@given(ops=mutations())
def test_training_config(fit_parser, fuzz_dir, ops):
    path = fresh_path(fuzz_dir, "quickstart.yaml")
    path.write_bytes(mutate(BASE.read_bytes(), ops))
    try:
        cfg = reads_or_refuses(lambda: _parse(fit_parser, path), path, errors=CONFIG_ERRORS)
        if cfg is not None:
            check_numbers(cfg.fit.as_dict())
    finally:
        path.unlink()


for _ops in CONFIG_SPECIFIC:
    test_training_config = example(ops=_ops)(test_training_config)
