"""The ``cotdistill`` command line. Each sub-command parses its arguments and calls one library function."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from cotdistill.data.encode import SECTION_ALIASES, WINDOWS
from cotdistill.world import WORLD_MAX_NEW_TOKENS


def _cmd_data_stats(args: argparse.Namespace) -> int:
    from cotdistill.config import from_dict
    from cotdistill.data.encode import EncodeConfig
    from cotdistill.data.formats import load_records
    from cotdistill.data.records import apply_system_policy, repeated_positions
    from cotdistill.data.stats import before_after, format_stats, system_token_share
    from cotdistill.models import load_tokenizer, model_max_positions

    # --lsp alone means lead-span truncation, --window alone a window (at --lsp, default half); 0 is refused
    truncation = args.truncation or ("window" if args.window else "lsp" if args.lsp is not None else "none")
    lsp = args.lsp if args.lsp is not None else (0.5 if truncation == "window" else 1.0)
    config = from_dict(EncodeConfig, {"sections": args.sections, "truncation": truncation, "lsp": lsp,
                                      "window": args.window or "left"})
    result = load_records(args.file, args.format, on_error=args.on_error, fields=args.fields, split=args.split,
                          subset=args.subset)
    tokenizer = load_tokenizer(args.tokenizer or "world:tokenizer")
    as_given = result.records
    result.records = apply_system_policy(result.records, args.system)
    # a model folder given as --tokenizer tells its positions; the world tokenizer's models have 1024
    max_length = args.max_length or model_max_positions(args.tokenizer or "world:student")
    stats = before_after(tokenizer, result.records, config, max_length, str(args.file))
    stats.update(format=result.format, skipped=len(result.skipped), tokenizer=args.tokenizer or "world:tokenizer",
                 duplicate_records=len(repeated_positions(result.records)), max_length=max_length,
                 system=args.system, system_token_share=system_token_share(tokenizer, as_given, config, str(args.file)))
    if args.json:
        print(json.dumps(stats))
    else:
        print(f"format: {result.format}   skipped rows: {len(result.skipped)}   tokenizer: {stats['tokenizer']}")
        print(format_stats(stats))
    return 0


def _cmd_world_build(args: argparse.Namespace) -> int:
    from cotdistill.world.build import build_world

    manifest = build_world(args.out, quick=args.quick, only=args.only)
    measured = manifest.get("properties", {})
    print(json.dumps({name: measured.get(name, {}).get("accuracy") for name in ("teacher", "student")}))
    print(f"world written to {args.out}")
    return 0


def _cmd_world_export(args: argparse.Namespace) -> int:
    from cotdistill.data.formats import write_jsonl
    from cotdistill.world import world_records

    records = world_records(args.split, args.style, args.n)
    write_jsonl(records, args.out, args.format)
    print(f"wrote {len(records)} {args.style}-style {args.split} records to {args.out} ({args.format} format)")
    return 0


def _config_and_overrides(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """(YAML path, overrides); without a YAML the first positional word is already an override."""
    config_path, overrides = args.config, list(args.overrides)
    if config_path is not None and "=" in config_path:
        config_path, overrides = None, [config_path, *overrides]
    return config_path, overrides


def _cmd_train(args: argparse.Namespace) -> int:
    from cotdistill.config import load_config
    from cotdistill.training.config import TrainConfig
    from cotdistill.training.loop import train

    config = load_config(TrainConfig, *_config_and_overrides(args))
    config.allow_config_change = config.allow_config_change or args.allow_config_change
    summary = train(config)
    print(json.dumps({k: v for k, v in summary.items() if not isinstance(v, dict)}, indent=2))
    print(f"trained model: {summary['final_model']}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from cotdistill.evaluation.benchmarks import evaluate_model

    results = evaluate_model(args.model, args.bench, data_path=args.data, limit=args.limit, out_dir=args.out,
                             max_new_tokens=args.max_new_tokens, samples=args.samples,
                             temperature=args.temperature, batch_size=args.batch_size, system=args.system,
                             chat_template=args.chat_template)
    keys = ("bench", "n", "accuracy", "ci95", f"pass@{args.samples}", "truncated_responses", "tokens_per_s")
    print(json.dumps({k: results[k] for k in keys}, indent=2))
    print(f"results in {args.out}")
    return 0


def _cmd_teacher_cache(args: argparse.Namespace) -> int:
    from cotdistill.config import ConfigError, from_dict
    from cotdistill.data.encode import EncodeConfig, encode_records
    from cotdistill.data.records import parse_system_policy
    from cotdistill.models import load_model, load_tokenizer, pick_device
    from cotdistill.teacher.cache import build_cache
    from cotdistill.training.loop import load_split_records

    if not args.data.startswith("world:") and Path(args.out).resolve() == Path(args.data).resolve():
        raise ConfigError(f"--out would overwrite the input {args.data}: write the cache to a new folder")
    config = from_dict(EncodeConfig, {"sections": args.sections, "truncation": args.truncation, "lsp": args.lsp,
                                      "window": args.window})
    parse_system_policy(args.system)
    records, _ = load_split_records(args.data, args.format, "raise", None, args.system)
    tokenizer = load_tokenizer(args.teacher, chat_template=args.chat_template)
    examples = encode_records(tokenizer, records, config, args.data).examples
    teacher = load_model(args.teacher, pick_device(args.device))
    manifest = build_cache(teacher, tokenizer, examples, args.out, top_k=args.top_k, encode_config=config,
                           data_path=args.data, teacher_name=args.teacher, temperature=args.temperature,
                           batch_size=args.batch_size, logp_dtype=args.dtype,
                           kl_target=None if args.kl_target < 0 else args.kl_target)
    keys = ("records", "rows", "top_k", "bytes", "bytes_per_supervised_token", "mean_kl_dense_vs_reconstructed")
    print(json.dumps({k: manifest[k] for k in keys}, indent=2))
    print(f"cache written to {args.out}")
    return 0


def _field_mapping(text: str) -> dict[str, str]:
    """argparse type for ``prompt=problem,cot=steps``: our names to the dataset's columns."""
    pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
    if not pairs or any(len(p) != 2 or not p[0].strip() or not p[1].strip() for p in pairs):
        raise argparse.ArgumentTypeError(f"expected ours=theirs pairs joined by commas, found {text!r}")
    return {ours.strip(): theirs.strip() for ours, theirs in pairs}


def _split_floats(text: str) -> list[float]:
    """argparse type for ``0.25,0.5``: every item a number in (0, 1]."""
    values = []
    for item in (x.strip() for x in text.split(",") if x.strip()):
        try:
            value = float(item)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected numbers in (0, 1] joined by commas, found {item!r}") from None
        if not 0.0 < value <= 1.0:
            raise argparse.ArgumentTypeError(f"expected numbers in (0, 1], found {value:g}")
        values.append(value)
    return values


def _words_from(allowed: tuple[str, ...] | list[str]):
    """argparse type for ``a,b``: every item one of ``allowed``."""
    def parse(text: str) -> list[str]:
        words = [x.strip() for x in text.split(",") if x.strip()]
        unknown = [w for w in words if w not in allowed]
        if unknown:
            raise argparse.ArgumentTypeError(f"expected some of {', '.join(allowed)}; found {', '.join(unknown)}")
        return words
    return parse


def _trace_pair(text: str) -> tuple[str, str]:
    if ":" not in text:
        raise argparse.ArgumentTypeError(f"expected TRACE_DIR:RESULTS_JSON, found {text!r}")
    trace_dir, results = text.split(":", 1)
    return trace_dir, results


def _positive_int(text: str) -> int:
    """argparse type for counts: 0 or a negative number is an error here, not "all" (``--limit 0`` evaluated all)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, found {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, found {value}")
    return value


def _cmd_sweep(args: argparse.Namespace) -> int:
    from cotdistill.config import load_config
    from cotdistill.report.tables import markdown_table
    from cotdistill.sweep import TABLE_COLUMNS, run_sweep
    from cotdistill.training.config import TrainConfig

    base = load_config(TrainConfig, *_config_and_overrides(args))
    rows = run_sweep(base, args.out, lsps=args.lsp, windows=args.window, sections=args.sections,
                     eval_limit=args.eval_limit,
                     max_new_tokens=args.max_new_tokens)
    print(markdown_table(rows, TABLE_COLUMNS))
    print(f"table and plot in {args.out}")
    return 0


def _cmd_trace(args: argparse.Namespace) -> int:
    from cotdistill.config import from_dict
    from cotdistill.provenance.trace import TraceConfig, run_trace
    from cotdistill.report.provenance import summary_markdown

    config = from_dict(TraceConfig, {"unit": args.unit, "alpha": args.alpha, "beta": args.beta,
                                     "batch_size": args.batch_size, "limit": args.limit, "device": args.device,
                                     "context": args.context})
    summary = run_trace(args.samples, args.teacher, args.student, args.distilled, args.out, config,
                        world_styles=args.world_styles)
    print(summary_markdown(summary))
    print(f"report in {args.out}")
    return 0


def _cmd_correlate(args: argparse.Namespace) -> int:
    from cotdistill.provenance.correlate import correlate_dirs
    from cotdistill.report.tables import markdown_table

    result = correlate_dirs(args.pairs)
    print(markdown_table(result["table"]))
    print(f"Spearman rho (teacher share vs accuracy) = {result['spearman_teacher_share_vs_accuracy']:.3f}")
    return 0


def _cmd_select(args: argparse.Namespace) -> int:
    from cotdistill.select.run import select_records

    info = select_records(args.data, args.teacher, args.student, args.method, args.out,
                          per_question=args.per_question, keep=args.keep, cache_dir=args.cache_dir, beta=args.beta,
                          seed=args.seed, batch_size=args.batch_size, device=args.device, context=args.context)
    print(json.dumps(info, indent=2))
    return 0


def _cmd_select_experiment(args: argparse.Namespace) -> int:
    from cotdistill.config import load_config
    from cotdistill.report.tables import markdown_table
    from cotdistill.select.experiment import SelectExperimentConfig, run_experiment

    table = run_experiment(load_config(SelectExperimentConfig, *_config_and_overrides(args)))
    print(markdown_table(table))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from cotdistill.config import from_dict
    from cotdistill.demo import QUICK, DemoConfig, run_demo

    config = from_dict(DemoConfig, {"out": args.out, **(QUICK if args.quick else {})})
    report = run_demo(config)
    print(f"report: {report}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cotdistill", description=__doc__,
                                     epilog="Exit codes: 0 done; 2 an error in the input or config (one line on "
                                            "stderr, nothing written over); 1 a bug (with its traceback).")
    parser.add_argument("--debug", action="store_true", help="show the traceback of user errors too")
    parser.add_argument("--threads", type=_positive_int, help="CPU threads (default: OMP_NUM_THREADS if set, else "
                        "the cores this process may use; a train config's threads: wins)")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="inspect datasets").add_subparsers(dest="data_command", required=True)
    stats = data.add_parser("stats", help="token statistics before and after truncation")
    stats.add_argument("file")
    stats.add_argument("--format", default="auto", choices=["auto", "cot", "messages", "sharegpt", "gsm8k"])
    stats.add_argument("--fields", type=_field_mapping, help="our=theirs column names, e.g. prompt=problem,cot=steps")
    stats.add_argument("--split", default="train", help="split of a hub dataset or DatasetDict folder")
    stats.add_argument("--subset", help="a hub dataset's configuration, e.g. main for openai/gsm8k")
    stats.add_argument("--tokenizer", help="tokenizer path or hub id (default: the embedded world's)")
    stats.add_argument("--lsp", type=float, help="lead-span proportion in (0, 1]")
    stats.add_argument("--truncation", choices=["none", "lsp", "window", "cut_after_think"])
    stats.add_argument("--window", choices=["left", "middle", "right"], help="implies --truncation window")
    stats.add_argument("--sections", default="promptcotAns")
    stats.add_argument("--on-error", default="raise", choices=["raise", "skip"])
    stats.add_argument("--max-length", type=_positive_int,
                       help="count rows longer than this (default: the positions of the --tokenizer's model)")
    stats.add_argument("--system", default="drop", help="keep | drop | replace:TEXT, as train's data.system")
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(func=_cmd_data_stats)

    world = sub.add_parser("world", help="the embedded default world").add_subparsers(dest="world_command",
                                                                                     required=True)
    build = world.add_parser("build", help="rebuild tokenizer, teacher and student from seeds")
    build.add_argument("--out", default="runs/world")
    build.add_argument("--quick", action="store_true", help="tiny models and step counts (a smoke test)")
    build.add_argument("--only", choices=["tokenizer", "teacher", "student", "measure"],
                       help="rebuild one stage, keep the rest (teacher and student can run in parallel processes)")
    build.set_defaults(func=_cmd_world_build)
    export = world.add_parser("export", help="write the world's records as a dataset")
    export.add_argument("--split", default="train", choices=["train", "validation", "test"])
    export.add_argument("--style", default="teacher", choices=["teacher", "student"])
    export.add_argument("--n", type=_positive_int)
    export.add_argument("--format", default="messages", choices=["cot", "messages", "sharegpt"])
    export.add_argument("--out", required=True)
    export.set_defaults(func=_cmd_world_export)

    tr = sub.add_parser("train", help="distil a student (SFT and/or KD) from a YAML config")
    tr.add_argument("config", nargs="?", help="YAML config (defaults apply without one)")
    tr.add_argument("overrides", nargs="*", help="key=value overrides, e.g. encode.lsp=0.5")
    tr.add_argument("--allow-config-change", action="store_true",
                    help="resume although the config differs (e.g. a new optim.max_steps re-stretches the schedule)")
    tr.set_defaults(func=_cmd_train)

    teacher = sub.add_parser("teacher", help="offline teacher").add_subparsers(dest="teacher_command", required=True)
    cache = teacher.add_parser("cache", help="store the teacher's top-k log-probs for every supervised position")
    cache.add_argument("data", help="training data (file, dataset dir, or world:SPLIT)")
    cache.add_argument("--teacher", required=True)
    cache.add_argument("--top-k", type=int, default=24, help="most entries kept at a position")
    cache.add_argument("--out", required=True)
    cache.add_argument("--format", default="auto")
    cache.add_argument("--chat-template", help="a Jinja file or text: the one the training run renders with")
    cache.add_argument("--sections", default="promptcotAns")
    cache.add_argument("--truncation", default="none", choices=["none", "lsp", "window", "cut_after_think"])
    cache.add_argument("--lsp", type=float, default=1.0)
    cache.add_argument("--window", default="left", choices=["left", "middle", "right"])
    cache.add_argument("--temperature", type=float, default=1.0)
    cache.add_argument("--batch-size", type=int, default=8)
    cache.add_argument("--dtype", default="uint8", choices=["float16", "float32", "uint8"],
                       help="log-prob storage (uint8: steps below each position's maximum)")
    cache.add_argument("--kl-target", type=float, default=1e-3,
                       help="keep at each position the fewest entries (<= --top-k) whose even-tail reconstruction "
                       "is within this many nats of the teacher; -1: always --top-k")
    cache.add_argument("--device", default="auto")
    cache.add_argument("--system", default="drop", help="keep | drop | replace:TEXT, as the training run's "
                                                        "data.system")
    cache.set_defaults(func=_cmd_teacher_cache)

    ev = sub.add_parser("eval", help="evaluate a model on a benchmark")
    ev.add_argument("model")
    ev.add_argument("--bench", default="world")
    ev.add_argument("--data", help="local JSONL file or HF dataset directory")
    ev.add_argument("--limit", type=_positive_int)
    ev.add_argument("--samples", type=_positive_int, default=1)
    ev.add_argument("--temperature", type=float, default=0.0)
    ev.add_argument("--max-new-tokens", type=int, default=512)
    ev.add_argument("--batch-size", type=int, default=32)
    ev.add_argument("--system", help="system prompt for every question: the one the model was trained with "
                                     "(data.system: replace:TEXT); none by default, as data.system: drop")
    ev.add_argument("--chat-template", help="a Jinja file or text replacing the model's chat template")
    ev.add_argument("--out", default="runs/eval")
    ev.set_defaults(func=_cmd_eval)

    sw = sub.add_parser("sweep", help="train + evaluate each truncation setting; trade-off table and plot")
    sw.add_argument("config", nargs="?")
    sw.add_argument("overrides", nargs="*")
    sw.add_argument("--lsp", type=_split_floats, default=[0.1, 0.25, 0.5, 0.75, 1.0], help="e.g. 0.25,0.5,1")
    sw.add_argument("--window", type=_words_from(WINDOWS), default=[], help="e.g. left,middle,right (each at lsp 0.5)")
    sw.add_argument("--sections", type=_words_from(sorted(SECTION_ALIASES)), default=[], help="e.g. cotAns,cot,ans")
    sw.add_argument("--eval-limit", type=_positive_int)
    sw.add_argument("--max-new-tokens", type=int, default=WORLD_MAX_NEW_TOKENS)
    sw.add_argument("--out", default="runs/sweep")
    sw.set_defaults(func=_cmd_sweep)

    tc = sub.add_parser("trace", help="provenance of each generated action")
    tc.add_argument("--samples", required=True, help="samples.jsonl from `cotdistill eval`")
    tc.add_argument("--teacher", required=True)
    tc.add_argument("--student", required=True, help="the original student")
    tc.add_argument("--distilled", required=True)
    tc.add_argument("--out", default="runs/trace")
    tc.add_argument("--unit", default="sentence", choices=["sentence", "line", "step"])
    tc.add_argument("--alpha", type=float, default=0.05)
    tc.add_argument("--beta", type=float, default=0.1)
    tc.add_argument("--batch-size", type=int, default=8)
    tc.add_argument("--limit", type=_positive_int)
    tc.add_argument("--device", default="auto")
    tc.add_argument("--context", default="own_template", choices=["own_template", "shared_text"],
                    help="own_template: each model reads the question in its own chat template; shared_text: the "
                         "distilled model's rendering, identical for all three")
    tc.add_argument("--world-styles", action="store_true", help="compare with the embedded world's sentence styles")
    tc.set_defaults(func=_cmd_trace)

    co = sub.add_parser("correlate", help="teacher-originated share vs accuracy across distilled models")
    co.add_argument("pairs", nargs="+", type=_trace_pair, help="TRACE_DIR:RESULTS_JSON for each distilled model")
    co.set_defaults(func=_cmd_correlate)

    se = sub.add_parser("select", help="select training records by teacher-guided or baseline scores")
    se.add_argument("data")
    se.add_argument("--teacher", required=True)
    se.add_argument("--student", required=True)
    se.add_argument("--method", default="teacher")
    mode = se.add_mutually_exclusive_group(required=True)
    mode.add_argument("--per-question", action="store_true", help="best candidate per question")
    mode.add_argument("--keep", type=float, help="top fraction (<= 1) or count (> 1) of the dataset")
    se.add_argument("--out", required=True)
    se.add_argument("--cache-dir")
    se.add_argument("--beta", type=float, default=0.1)
    se.add_argument("--seed", type=int, default=0)
    se.add_argument("--batch-size", type=int, default=8)
    se.add_argument("--device", default="auto")
    se.add_argument("--context", default="own_template", choices=["own_template", "shared_text"],
                    help="shared_text: the student's rendering of the question, identical for both models")
    se.set_defaults(func=_cmd_select)

    sx = sub.add_parser("select-experiment", help="one student per selection method, evaluated")
    sx.add_argument("config", nargs="?")
    sx.add_argument("overrides", nargs="*")
    sx.set_defaults(func=_cmd_select_experiment)

    dm = sub.add_parser("demo", help="the main job on the embedded world")
    dm.add_argument("--out", default="runs/demo")
    dm.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test in about a minute")
    dm.set_defaults(func=_cmd_demo)
    return parser


# errors of what was asked for: a missing file or folder is the user's to fix, as is every UserError
USER_OS_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, FileExistsError)


class _StderrHandler(logging.Handler):
    """Writes each message to whatever ``sys.stderr`` is at that moment (a handler holding the stream it was made
    with keeps writing to a stream that was since replaced, as by a test's capture or a redirecting caller)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), file=sys.stderr, flush=True)


def one_line(err: BaseException) -> str:
    """The error as one line: a multi-line message (a list of failures) is joined, not cut."""
    return "; ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__


# the commands that run models: they set torch's threads and warn on a busy machine
THREADED_COMMANDS = {"train", "eval", "teacher", "sweep", "trace", "select", "select-experiment", "demo", "world"}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from cotdistill.errors import UserError

    # the library logs to "cotdistill.*"; the command line shows those messages, one per line, on stderr
    package_logger = logging.getLogger("cotdistill")
    if not any(isinstance(h, _StderrHandler) for h in package_logger.handlers):
        package_logger.addHandler(_StderrHandler())
    package_logger.setLevel(logging.INFO)

    try:
        if args.threads is not None or args.command in THREADED_COMMANDS:
            from cotdistill.threads import configure_threads

            configure_threads(args.threads)
        code = args.func(args)
    except (UserError, *USER_OS_ERRORS) as err:
        if args.debug:
            raise
        print(f"error: {one_line(err)}", file=sys.stderr)
        code = 2
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from cotdistill.distributed import exit_launched_process

        exit_launched_process(int(code or 0))
    return code


if __name__ == "__main__":
    sys.exit(main())
