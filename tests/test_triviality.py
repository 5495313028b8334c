"""Triviality of synthetic data (reasonembed.triviality, nbs/05d_triviality.ipynb): the verdict on a copying and a
non-copying fixture, TheoremQA's real questions, and the synthesize stage's `triviality` block checked with the run config."""
from pathlib import Path

import pytest

from reasonembed.config import ConfigError
from reasonembed.data import Doc, Query
from reasonembed.triviality import TrivialityConfig, judge_set, read_labelled, summarize, verdict

ROOT = Path(__file__).resolve().parent.parent

FACTS = ["Mitosis splits one cell nucleus into two identical nuclei.",
         "Photosynthesis turns light, water and carbon dioxide into sugar.",
         "Plate tectonics moves continents a few centimetres a year.",
         "Inflation erodes the purchasing power of savings."]
CORPUS = [Doc(f"f{i}", t + " It is a classic topic.") for i, t in enumerate(FACTS)] + \
         [Doc("other", "Stars fuse hydrogen into helium."), Doc("more", "Rivers carry sediment to the sea.")]
GOLD = {f"q{i}": [f"f{i}"] for i in range(len(FACTS))}


def test_a_query_copying_its_positive_is_trivial():
    df = judge_set([Query(f"q{i}", t) for i, t in enumerate(FACTS)], GOLD, CORPUS)
    assert df["bm25_rank"].tolist() == [1, 1, 1, 1]
    s = summarize(df)
    assert s["trivial"] and s["bm25_top1"] == 1.0 and s["median_overlap"] == 1.0
    assert verdict("copies", s).startswith("copies: **trivial**")


def test_queries_in_other_words_are_not_trivial():
    other = [Query("q0", "Why do two daughter cells end up genetically alike?"), Query("q1", "Where does a plant's mass come from?"),
             Query("q2", "Why is the Atlantic widening?"), Query("q3", "Should I keep my money under the mattress?")]
    s = summarize(judge_set(other, GOLD, CORPUS))
    assert not s["trivial"] and s["bm25_top1"] < 0.5 and s["n"] == 4
    assert verdict("others", s).startswith("others: not trivial")
    assert summarize(judge_set(other, GOLD, CORPUS), TrivialityConfig(trivial_top1=0.01))["trivial"] == (s["bm25_top1"] >= 0.01)


def test_theoremqa_questions_are_not_trivial():
    queries, positives, docs = read_labelled(ROOT / "reasonembed" / "assets" / "theoremqa-mini")
    s = summarize(judge_set(queries, positives, docs))
    assert (s["n"], s["unranked"], s["trivial"]) == (376, 0, False)
    assert 0.2 < s["bm25_top1"] < 0.5 < s["bm25_top10"]          # found often in the top 10, at rank 1 less than half the time


def test_the_synthesize_stage_checks_its_triviality_block(tmp_path):
    from reasonembed.profiles import config_blocks, load_run_config
    assert config_blocks(ROOT / "nbs" / "20_synthesize.ipynb")["triviality"] == "reasonembed.triviality.TrivialityConfig"
    cfg = tmp_path / "run.yaml"
    cfg.write_text("name: t\nstages:\n  synthesize:\n    notebook: 20_synthesize\n    params:\n      triviality: {trivial_top: 0.3}\n")
    with pytest.raises(ConfigError, match="did you mean 'trivial_top1'"):
        load_run_config(cfg)
    cfg.write_text("name: t\nstages:\n  synthesize:\n    notebook: 20_synthesize\n    params:\n      triviality: {trivial_top1: 0.3, top_k: 5}\n")
    assert load_run_config(cfg).stages[0].params["triviality"]["top_k"] == 5
