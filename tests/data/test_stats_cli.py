from __future__ import annotations

import json

import pytest

from cotdistill.cli import main


def _stratos_file(path, n=12):
    rows = []
    for i in range(n):
        thought = " ".join(f"Step {j}: compute {i} plus {j}." for j in range(8 + i))
        value = (f"<|begin_of_thought|>\n\n{thought}\n\n<|end_of_thought|>\n\n<|begin_of_solution|>\n\n"
                 f"\\boxed{{{2 * i}}}\n\n<|end_of_solution|>")
        rows.append({"system": "Your role as an assistant involves thoroughly exploring questions.",
                     "conversations": [{"from": "user", "value": f"What is {i}+{i}?"},
                                       {"from": "assistant", "value": value}]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_data_stats_halves_processed_tokens_at_lsp_half(tmp_path, capsys):
    path = tmp_path / "stratos.jsonl"
    _stratos_file(path)
    assert main(["data", "stats", str(path), "--lsp", "0.5", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    before, after = stats["before"], stats["after"]
    assert stats["format"] == "sharegpt" and before["records"] == after["records"] == 12
    assert after["tokens"] / before["tokens"] == pytest.approx(0.5, abs=0.01)
    assert after["supervised_tokens"] < before["supervised_tokens"]
    assert before["segments"]["answer"]["total"] > 0 and after["segments"]["answer"]["total"] == 0
    assert main(["data", "stats", str(path), "--sections", "cot", "--truncation", "cut_after_think"]) == 0
    assert "processed tokens after/before" in capsys.readouterr().out


def test_data_stats_reports_bad_file_clearly(tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "p", "cot": "c", "answer": "a"}\n{"prompt": \n')
    assert main(["data", "stats", str(path)]) == 2
    assert "bad.jsonl, line 2: expected one JSON object per line" in capsys.readouterr().err


def test_data_stats_counts_duplicates_and_rows_past_the_models_positions(tmp_path, capsys):
    path = tmp_path / "stratos.jsonl"
    _stratos_file(path)
    path.write_text(path.read_text() + path.read_text().splitlines(keepends=True)[3])  # row 4 again
    assert main(["data", "stats", str(path), "--json", "--max-length", "1000000"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["duplicate_records"] == 1 and stats["max_length"] == 1000000
    assert stats["before"]["over_max_length"] == 0
    longest = stats["before"]["sequence_length"]["max"]
    # rows grow with i (8 + i steps): one token less than the longest row leaves exactly that row (i = 11) over
    assert main(["data", "stats", str(path), "--json", "--max-length", str(longest - 1)]) == 0
    assert json.loads(capsys.readouterr().out)["before"]["over_max_length"] == 1


def test_system_turns_are_dropped_by_default_kept_or_replaced_on_request(tmp_path, capsys):
    from cotdistill.data.prepare import load_split_records

    path = tmp_path / "stratos.jsonl"
    _stratos_file(path, n=3)
    given = "Your role as an assistant involves thoroughly exploring questions."
    systems = {policy: {r.system for r in load_split_records(str(path), "auto", "raise", None, policy)[0]}
               for policy in ("drop", "keep", "replace:Be brief.")}
    assert systems == {"drop": {None}, "keep": {given}, "replace:Be brief.": {"Be brief."}}

    runs = {}
    for policy in ("drop", "keep"):
        assert main(["data", "stats", str(path), "--json", "--system", policy]) == 0
        runs[policy] = json.loads(capsys.readouterr().out)
    kept, dropped = runs["keep"]["before"]["tokens"], runs["drop"]["before"]["tokens"]
    assert kept > dropped
    assert runs["drop"]["system_token_share"] == pytest.approx((kept - dropped) / kept)
    assert main(["data", "stats", str(path), "--system", "maybe"]) == 2
    assert "system must be keep, drop or replace:TEXT" in capsys.readouterr().err


def test_eval_uses_the_system_prompt_it_is_given(tmp_path, monkeypatch):
    import cotdistill.evaluation.benchmarks as benchmarks

    seen = []

    def fake_generate(model, tokenizer, questions, gen, **kwargs):
        seen.append(kwargs.get("system"))
        raise KeyboardInterrupt  # enough: the prompts were about to be rendered with this system prompt

    monkeypatch.setattr(benchmarks, "generate", fake_generate)
    # the command line reports a Ctrl-C as one line and exit code 130
    assert main(["eval", "world:student", "--limit", "1", "--system", "Be brief.", "--out", str(tmp_path)]) == 130
    assert seen == ["Be brief."]


def test_a_window_alone_means_window_truncation(tmp_path, capsys):
    path = tmp_path / "stratos.jsonl"
    _stratos_file(path)
    runs = {}
    for argv in (["--window", "right"], ["--truncation", "window", "--window", "right", "--lsp", "0.5"]):
        assert main(["data", "stats", str(path), "--json", *argv]) == 0
        runs[len(argv)] = json.loads(capsys.readouterr().out)["after"]
    assert runs[2] == runs[6]  # --window right alone = the explicit right window at half the sequence
    assert runs[2]["segments"]["prompt"]["total"] == 0  # the right half of these rows holds no prompt token


def test_data_stats_counts_the_records_train_drops_for_data_max_tokens(tmp_path, capsys):
    path = tmp_path / "stratos.jsonl"
    _stratos_file(path)
    assert main(["data", "stats", str(path), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert "longer_than_max_tokens" not in stats
    longest = stats["before"]["sequence_length"]["max"]
    # rows grow with i: one token under the longest row leaves that row alone over the limit
    assert main(["data", "stats", str(path), "--json", f"data.max_tokens={longest - 1}"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["max_tokens"], stats["longer_than_max_tokens"]) == (longest - 1, 1)
    assert main(["data", "stats", str(path), f"data.max_tokens={longest - 1}"]) == 0
    assert f"longer than data.max_tokens {longest - 1} = 1 (train drops them" in capsys.readouterr().out


def test_data_stats_reads_what_train_reads_and_takes_full_share(capsys):
    """A world: spec (train accepts one) and full_share with LSP (once a traceback): the untruncated "before" is
    every record whole, the "after" keeps a share of them whole, so it lies between LSP 0.5's and all tokens."""
    assert main(["data", "stats", "world:train:teacher:40", "--json", "--truncation", "lsp", "--lsp", "0.5"]) == 0
    half = json.loads(capsys.readouterr().out)
    assert main(["data", "stats", "world:train:teacher:40", "--json", "encode.truncation=lsp", "encode.lsp=0.5",
                 "encode.full_share=0.5"]) == 0
    mixed = json.loads(capsys.readouterr().out)
    assert mixed["format"] == "world" and mixed["before"] == half["before"]
    assert half["after"]["tokens"] < mixed["after"]["tokens"] < mixed["before"]["tokens"]
