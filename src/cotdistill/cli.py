"""The ``cotdistill`` command line.

Every command reads one typed config: ``cotdistill CMD [CONFIG.yaml] [key=value ...] [--flags]``, each laid over
the one before (YAML, then overrides, then flags). A flag is a short name for one key (``eval --bench gsm8k`` is
``eval.bench=gsm8k``); ``--print-config`` prints the whole config, defaults included, as YAML that the command
reads back unchanged, each key under its help. A flag's help and choices are its key's, read from the config field
(its ``metadata["help"]`` and ``Literal`` type) when the command parses. Each command then calls one stage.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cotdistill.config import AT_LEAST_ONE
from cotdistill.data.encode import SECTION_ALIASES, WINDOWS

YAML_SUFFIXES = (".yaml", ".yml")
OVERRIDE = re.compile(r"[A-Za-z_][\w.]*=")  # key=value; a path holding "=" is not one


def _field_mapping(text: str) -> dict[str, str]:
    """argparse type for ``prompt=problem,cot=steps``: our names to the dataset's columns."""
    pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
    if not pairs or any(len(p) != 2 or not p[0].strip() or not p[1].strip() for p in pairs):
        raise argparse.ArgumentTypeError(f"expected ours=theirs pairs joined by commas, found {text!r}")
    return {ours.strip(): theirs.strip() for ours, theirs in pairs}


def _split_floats(text: str) -> list[float]:
    """argparse type for ``0.25,0.5``: the numbers (their range is the config key's)."""
    values = []
    for item in (x.strip() for x in text.split(",") if x.strip()):
        try:
            values.append(float(item))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected numbers joined by commas, found {item!r}") from None
    return values


def _split_words(text: str) -> list[str]:
    """argparse type for ``a,b:1``: the items, checked where they are read."""
    return [x.strip() for x in text.split(",") if x.strip()]


def _words_from(allowed: tuple[str, ...] | list[str]):
    """argparse type for ``a,b``: every item one of ``allowed``."""
    def parse(text: str) -> list[str]:
        words = [x.strip() for x in text.split(",") if x.strip()]
        unknown = [w for w in words if w not in allowed]
        if unknown:
            raise argparse.ArgumentTypeError(f"expected some of {', '.join(allowed)}; found {', '.join(unknown)}")
        return words
    return parse


def _comma_words(text: str) -> list[str]:
    """argparse type for ``a,b``: the words, any."""
    return [x.strip() for x in text.split(",") if x.strip()]


def _positive_int(text: str) -> int:
    """argparse type for counts: 0 or a negative number is an error here, not "all" (``--limit 0`` evaluated all);
    the range is the configs' count range."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number {AT_LEAST_ONE}, found {text!r}") from None
    if value not in AT_LEAST_ONE:
        raise argparse.ArgumentTypeError(f"expected a whole number {AT_LEAST_ONE}, found {value}")
    return value


@dataclass(frozen=True)
class Flag:
    """``--name`` as a short form of one config key."""
    name: str
    key: str
    # argparse's type / choices / action / help; a key's flag without help or choices takes them from its field
    options: dict[str, Any] = field(default_factory=dict)
    is_key: bool = True  # False: a switch the command turns into several keys (demo --quick)


@dataclass(frozen=True)
class Command:
    words: tuple[str, ...]  # ("teacher", "cache")
    help: str
    config: Callable[[], type]  # the config dataclass (imported when the command runs)
    run: Callable[[Any], int]
    positional: str | None = None  # the key a bare word sets (eval MODEL → model)
    many: bool = False  # bare words form a list (correlate's pairs)
    flags: tuple[Flag, ...] = ()
    # from the flags given, the defaults they imply (data stats' --window: lsp 0.5; demo --quick: small sizes):
    # a layer below the YAML, so that every key the user names wins over it
    implied: Callable[[dict], dict] | None = None


def _set_key(tree: dict, key: str, value: Any) -> None:
    *parents, last = key.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[last] = value


# --- what each command runs ----------------------------------------------------------------------------------------
def _run_data_stats(config) -> int:
    from cotdistill.data.stats import format_stats
    from cotdistill.stages.data_stats import data_stats

    stats = data_stats(config)
    if config.json:
        print(json.dumps(stats))
    else:
        print(f"format: {stats['format']}   skipped rows: {stats['skipped']}   tokenizer: {stats['tokenizer']}")
        print(format_stats(stats))
    return 0


def _run_world_build(config) -> int:
    from cotdistill.stages.world_build import build_world

    manifest = build_world(config.out, quick=config.quick, only=config.only)
    measured = manifest.get("properties", {})
    print(json.dumps({name: measured.get(name, {}).get("accuracy") for name in ("teacher", "student")}))
    print(f"world written to {config.out}")
    return 0


def _run_world_export(config) -> int:
    from cotdistill.stages.world_export import export_world

    n = export_world(config)
    print(f"wrote {n} {config.style}-style {config.split} records to {config.out} ({config.format} format)")
    return 0


def _run_train(config) -> int:
    from cotdistill.stages.train import run_training

    summary = run_training(config)
    print(json.dumps({k: v for k, v in summary.items() if not isinstance(v, dict)}, indent=2))
    print(f"trained model: {summary['final_model']}")
    return 0


def _run_teacher_cache(config) -> int:
    from cotdistill.stages.teacher_cache import build_teacher_cache

    manifest = build_teacher_cache(config)
    keys = ("records", "rows", "top_k", "bytes", "bytes_per_supervised_token", "mean_kl_dense_vs_reconstructed")
    print(json.dumps({k: manifest[k] for k in keys}, indent=2))
    print(f"cache written to {config.out or config.train.teacher_cache}")
    return 0


def _run_eval(config) -> int:
    from cotdistill.stages.evaluate import run_eval

    results = run_eval(config)
    keys = ("bench", "n", "accuracy", "ci95", f"pass@{config.eval.samples}", "truncated_responses", "tokens_per_s")
    print(json.dumps({k: results[k] for k in keys}, indent=2))
    print(f"results in {config.out}")
    return 0


def _run_sweep(config) -> int:
    from cotdistill.report.tables import TRADEOFF_COLUMNS, markdown_table
    from cotdistill.stages.sweep import run_sweep

    rows = run_sweep(config)
    print(markdown_table(rows, TRADEOFF_COLUMNS))
    print(f"table and plot in {config.out}")
    return 0


def _run_trace(config) -> int:
    from cotdistill.report.provenance import summary_markdown
    from cotdistill.stages.trace import run_trace

    summary = run_trace(config)
    print(summary_markdown(summary))
    print(f"report in {config.out}")
    return 0


def _run_correlate(config) -> int:
    from cotdistill.report.tables import markdown_table
    from cotdistill.stages.trace import run_correlate

    result = run_correlate(config)
    print(markdown_table(result["table"]))
    print(f"Spearman rho (teacher share vs accuracy) = {result['spearman_teacher_share_vs_accuracy']:.3f}")
    return 0


def _run_select(config) -> int:
    from cotdistill.stages.select import select_records

    print(json.dumps(select_records(config), indent=2))
    return 0


def _run_select_experiment(config) -> int:
    from cotdistill.report.tables import markdown_table
    from cotdistill.stages.select_experiment import run_experiment

    print(markdown_table(run_experiment(config)))
    return 0


def _run_compare(config) -> int:
    from cotdistill.stages.compare import run_compare

    result = run_compare(config)
    print(json.dumps({k: v for k, v in result.items() if k != "sentences"}) if config.json
          else "\n".join(result["sentences"]))
    return 0


def _run_demo(config) -> int:
    from cotdistill.stages.demo import run_demo

    print(f"report: {run_demo(config)}")
    return 0


# --- the configs (imported late: `cotdistill --help` loads no torch) -----------------------------------------------
def _data_stats_config():
    from cotdistill.stages.data_stats import DataStatsConfig
    return DataStatsConfig


def _world_build_config():
    from cotdistill.stages.world_build import WorldBuildConfig
    return WorldBuildConfig


def _world_export_config():
    from cotdistill.stages.world_export import WorldExportConfig
    return WorldExportConfig


def _train_config():
    from cotdistill.training.config import TrainConfig
    return TrainConfig


def _teacher_cache_config():
    from cotdistill.stages.teacher_cache import TeacherCacheConfig
    return TeacherCacheConfig


def _eval_config():
    from cotdistill.stages.evaluate import EvalConfig
    return EvalConfig


def _sweep_config():
    from cotdistill.stages.sweep import SweepConfig
    return SweepConfig


def _trace_config():
    from cotdistill.provenance.trace import TraceConfig
    return TraceConfig


def _correlate_config():
    from cotdistill.stages.trace import CorrelateConfig
    return CorrelateConfig


def _select_config():
    from cotdistill.stages.select import SelectConfig
    return SelectConfig


def _select_experiment_config():
    from cotdistill.stages.select_experiment import SelectExperimentConfig
    return SelectExperimentConfig


def _compare_config():
    from cotdistill.stages.compare import CompareConfig
    return CompareConfig


def _demo_config():
    from cotdistill.stages.demo import DemoConfig
    return DemoConfig


def _stats_truncation(values: dict) -> dict:
    """``--lsp`` alone means lead-span truncation; ``--window`` or ``--truncation window`` a window over half the
    tokens unless an lsp is given."""
    encode = values.get("encode", {})
    implied: dict[str, Any] = {}
    if "window" in encode or encode.get("truncation") == "window":
        implied = {"truncation": "window", "lsp": 0.5}
    elif "lsp" in encode:
        implied = {"truncation": "lsp"}
    return {"encode": implied} if implied else {}


def _demo_quick(values: dict) -> dict:
    """``--real``: the real student's sizes; ``--quick``: tiny sizes (over ``--real``'s where both are given)."""
    from cotdistill.config import merge
    from cotdistill.stages.demo import QUICK, REAL

    real = REAL if values.pop("real", False) else {}
    return merge(real, QUICK) if values.pop("quick", False) else real


SYSTEM_HELP = "keep | drop | replace:TEXT, as train's data.system"
DATA_FLAGS = (Flag("--format", "data.format"),
              Flag("--fields", "data.fields", {"type": _field_mapping,
                                               "help": "our=theirs column names, e.g. prompt=problem,cot=steps"}),
              Flag("--split", "data.split"), Flag("--subset", "data.subset"),
              Flag("--system", "data.system", {"help": SYSTEM_HELP}))
ENCODE_FLAGS = (Flag("--sections", "encode.sections"), Flag("--truncation", "encode.truncation"),
                Flag("--lsp", "encode.lsp", {"type": float}), Flag("--window", "encode.window"),
                Flag("--keep-tail", "encode.keep_tail", {"type": _positive_int,
                                                         "help": "with --truncation lsp_keep_tail: the last K tokens"}))
EVAL_FLAGS = (Flag("--bench", "eval.bench"), Flag("--data", "eval.data", {"help": "file, dataset folder or hub id"}),
              Flag("--limit", "eval.limit", {"type": _positive_int}),
              Flag("--preset", "eval.preset", {"help": "a named protocol filling the eval keys not given (paper: "
                                                       "the truncation paper's lighteval settings)"}),
              Flag("--prompt-template", "eval.prompt_template", {"help": "text holding {problem}, or a file whose "
                                                                         "text does: the question the model sees"}),
              Flag("--samples", "eval.samples", {"type": _positive_int}),
              Flag("--temperature", "eval.temperature", {"type": float}),
              Flag("--max-new-tokens", "eval.max_new_tokens", {"type": _positive_int,
                                                               "help": "default: the benchmark's"}),
              Flag("--batch-size", "eval.batch_size", {"type": _positive_int}),
              Flag("--system", "eval.system", {"help": "system prompt of every question: the one the model was "
                                                       "trained with (data.system: replace:TEXT); default: none, "
                                                       "or the chat template's own where it adds one"}),
              Flag("--chat-template", "eval.chat_template", {"help": "a Jinja file or text"}),
              Flag("--split", "eval.split", {"help": "default: test where the data has one, else train"}),
              Flag("--subset", "eval.subset"),
              Flag("--extraction", "eval.extraction"))

COMMANDS = (
    Command(("data", "stats"), "token statistics before and after truncation", _data_stats_config, _run_data_stats,
            positional="data.path",
            flags=(*DATA_FLAGS, *ENCODE_FLAGS, Flag("--on-error", "data.on_error"),
                   Flag("--tokenizer", "tokenizer"), Flag("--max-length", "max_length", {"type": _positive_int}),
                   Flag("--json", "json", {"action": "store_true"})),
            implied=_stats_truncation),
    Command(("world", "build"), "rebuild tokenizer, teacher and student from seeds", _world_build_config,
            _run_world_build, flags=(Flag("--out", "out"), Flag("--quick", "quick", {"action": "store_true"}),
                                     Flag("--only", "only"))),
    Command(("world", "export"), "write the world's records as a dataset", _world_export_config, _run_world_export,
            flags=(Flag("--split", "split"), Flag("--style", "style"), Flag("--n", "n", {"type": _positive_int}),
                   Flag("--format", "format"), Flag("--out", "out"))),
    Command(("train",), "distil a student (SFT and/or KD)", _train_config, _run_train,
            flags=(Flag("--allow-config-change", "allow_config_change", {
                "action": "store_true",
                "help": "resume although the config differs (a new optim.max_steps re-stretches the schedule)"}),)),
    Command(("teacher", "cache"), "store the teacher's top-k log-probs for every supervised position",
            _teacher_cache_config, _run_teacher_cache, positional="train.data.path",
            flags=(Flag("--train-config", "train_config", {"help": "the training YAML the cache is for"}),
                   Flag("--teacher", "train.teacher"), Flag("--out", "out"), Flag("--top-k", "top_k", {"type": int}),
                   Flag("--kl-target", "kl_target", {"type": float}), Flag("--dtype", "dtype"),
                   Flag("--batch-size", "batch_size", {"type": _positive_int}),
                   Flag("--temperature", "train.loss.temperature", {"type": float}),
                   Flag("--chat-template", "train.chat_template"), Flag("--device", "train.device"),
                   *[Flag(f.name, "train." + f.key, f.options) for f in (*DATA_FLAGS, *ENCODE_FLAGS)])),
    Command(("eval",), "evaluate a model on a benchmark", _eval_config, _run_eval, positional="model",
            flags=(*EVAL_FLAGS, Flag("--out", "out"), Flag("--device", "device"))),
    Command(("sweep",), "train + evaluate each truncation setting; trade-off table and plot", _sweep_config,
            _run_sweep,
            flags=(Flag("--train-config", "train_config", {"help": "the training YAML every point starts from"}),
                   Flag("--lsp", "lsps", {"type": _split_floats, "help": "e.g. 0.25,0.5,1, each in (0, 1]"}),
                   Flag("--window", "windows", {"type": _words_from(WINDOWS), "help": "e.g. left,middle,right"}),
                   Flag("--sections", "sections", {"type": _words_from(sorted(SECTION_ALIASES)),
                                                   "help": "e.g. cotAns,cot,ans"}),
                   Flag("--endings", "endings", {"type": _split_words, "help": "truncations keeping the "
                                                 "ending, e.g. answer,tail:32,whole:0.1"}),
                   Flag("--on-policy", "on_policy", {"type": _split_words, "help": "on-policy points, e.g. "
                                                     "after:40,after:40:lead,mix:0.5,alone:250"}),
                   Flag("--eval-limit", "eval.limit", {"type": _positive_int}),
                   *[f for f in EVAL_FLAGS if f.key != "eval.limit"], Flag("--out", "out"))),
    Command(("trace",), "provenance of each generated action", _trace_config, _run_trace,
            flags=(Flag("--samples", "samples"), Flag("--teacher", "teacher"), Flag("--student", "student"),
                   Flag("--distilled", "distilled"), Flag("--out", "out"), Flag("--unit", "unit"),
                   Flag("--alpha", "alpha", {"type": float}), Flag("--margin", "margin", {"type": float}),
                   Flag("--beta", "beta", {"type": float, "help": "deprecated: --margin"}),
                   Flag("--batch-size", "batch_size", {"type": _positive_int}),
                   Flag("--limit", "limit", {"type": _positive_int}), Flag("--device", "device"),
                   Flag("--context", "context"),
                   Flag("--world-styles", "world_styles", {"action": "store_true"}))),
    Command(("correlate",), "teacher-originated share vs accuracy across distilled models", _correlate_config,
            _run_correlate, positional="pairs", many=True),
    Command(("select",), "select training records by teacher-guided or baseline scores", _select_config, _run_select,
            positional="data",
            flags=(Flag("--teacher", "teacher"), Flag("--student", "student"), Flag("--method", "method"),
                   Flag("--per-question", "per_question", {"action": "store_true"}),
                   Flag("--keep", "keep", {"type": float, "help": "top fraction (<= 1) or count (> 1)"}),
                   Flag("--out", "out"), Flag("--cache-dir", "cache_dir"),
                   Flag("--margin", "margin", {"type": float}),
                   Flag("--beta", "beta", {"type": float, "help": "deprecated: --margin"}),
                   Flag("--seed", "seed", {"type": int}), Flag("--batch-size", "batch_size", {"type": _positive_int}),
                   Flag("--device", "device"), Flag("--context", "context"))),
    Command(("select-experiment",), "one student per selection method, evaluated", _select_experiment_config,
            _run_select_experiment, flags=(Flag("--out", "out"),)),
    Command(("compare",), "two evaluations of the same problems: paired difference, McNemar's p, retention",
            _compare_config, _run_compare, positional="results", many=True,
            flags=(Flag("--names", "names", {"type": _comma_words, "help": "A,B: what the sentences call them"}),
                   Flag("--resamples", "resamples", {"type": _positive_int}), Flag("--seed", "seed", {"type": int}),
                   Flag("--json", "json", {"action": "store_true"}))),
    Command(("demo",), "the main job on the embedded world", _demo_config, _run_demo,
            flags=(Flag("--out", "out"),
                   Flag("--quick", "quick", {"action": "store_true",
                                             "help": "tiny sizes: a smoke test in about a minute"}, is_key=False),
                   Flag("--real", "real", {"action": "store_true", "help": "the real pretrained student "
                                           "SmolLM2-135M-Instruct (cotdistill[real]), sized for a CPU"},
                        is_key=False)),
            implied=_demo_quick),
)


def _add_flags(cmd: argparse.ArgumentParser, command: Command) -> None:
    """The command's flags, each one's help and choices those of its config key where the flag gives none."""
    from cotdistill.config import field_help, literal_choices

    cls = command.config()
    for flag in command.flags:
        options = dict(flag.options)
        if flag.is_key:
            if not {"choices", "type", "action"} & set(options):
                choices = literal_choices(cls, flag.key)
                if choices is not None:
                    options["choices"] = choices
            text = options.get("help") or field_help(cls, flag.key)
            options["help"] = f"{text} (= {flag.key})" if text else f"= {flag.key}"
        if options.get("action") != "store_true":
            options.setdefault("metavar", flag.key.rsplit(".", 1)[-1].upper())
        cmd.add_argument(flag.name, dest=f"flag:{flag.key}", default=argparse.SUPPRESS, **options)


class _CommandParser(argparse.ArgumentParser):
    """A command's parser, whose flags are added when it parses: their help and choices come from the command's
    config class, imported then, so ``cotdistill --help`` loads no torch."""

    command: Command | None = None

    def parse_known_args(self, args=None, namespace=None):
        if self.command is not None:
            command, self.command = self.command, None
            _add_flags(self, command)
        return super().parse_known_args(args, namespace)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cotdistill", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Exit codes: 0 done; 2 an error in the input or config (one line on "
                                            "stderr, nothing written over); 1 a bug (with its traceback).")
    parser.add_argument("--debug", action="store_true", help="show the traceback of user errors too")
    parser.add_argument("--threads", type=_positive_int, help="CPU threads (default: OMP_NUM_THREADS if set, else "
                        "the cores this process may use; a train config's threads: wins)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_CommandParser)
    groups: dict[str, argparse._SubParsersAction] = {}
    group_help = {"data": "inspect datasets", "world": "the embedded default world", "teacher": "offline teacher"}
    for command in COMMANDS:
        parent = sub
        if len(command.words) == 2:
            if command.words[0] not in groups:
                holder = sub.add_parser(command.words[0], help=group_help[command.words[0]])
                groups[command.words[0]] = holder.add_subparsers(dest=f"{command.words[0]}_command", required=True,
                                                                 parser_class=_CommandParser)
            parent = groups[command.words[0]]
        cmd = parent.add_parser(command.words[-1], help=command.help)
        bare = f" | {command.positional.upper().replace('.', '_')}" if command.positional else ""
        cmd.add_argument("words", nargs="*", metavar="CONFIG.yaml | key=value" + bare,
                         help="a YAML config, key=value overrides (e.g. eval.limit=50)"
                              + (f", and {command.positional} as a bare word" if command.positional else ""))
        cmd.add_argument("--print-config", action="store_true",
                         help="print the whole config as YAML, each key under its help, and stop")
        cmd.command = command
        cmd.set_defaults(command_spec=command)
    return parser


def command_config(command: Command, args: argparse.Namespace):
    """The command's config from its words (YAML path, key=value, bare positional) and flags, checked."""
    from cotdistill.config import ConfigError, load_config

    path, overrides, values, bare = None, [], {}, []
    for word in args.words:
        if OVERRIDE.match(word):
            overrides.append(word)
        elif path is None and (word.endswith(YAML_SUFFIXES) or (command.positional is None and Path(word).is_file())):
            path = word
        else:
            bare.append(word)
    if bare:
        if command.positional is None:
            raise ConfigError(f"unexpected word {bare[0]!r}: expected CONFIG.yaml or key=value")
        if len(bare) > 1 and not command.many:
            raise ConfigError(f"one {command.positional} expected, found {len(bare)}: {' '.join(bare)}")
        _set_key(values, command.positional, bare if command.many else bare[0])
    for name, value in vars(args).items():
        if name.startswith("flag:"):
            _set_key(values, name[len("flag:"):], value)
    implied = command.implied(values) if command.implied is not None else {}
    return load_config(command.config(), path, overrides, values, base=implied)


# errors of what was asked for: a missing file or folder is the user's to fix, as is every UserError
USER_OS_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, FileExistsError)


def _silence_stdout() -> None:
    """Point standard output at /dev/null: the interpreter flushes it once more on exit, and into a closed pipe
    that flush would print a second BrokenPipeError."""
    import contextlib

    # a stdout without a file descriptor (a test's capture) has no final flush to silence
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


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
    # words may follow flags (`sweep --lsp 0.5,1 eval.bench=gsm8k`): argparse hands back what its positional did
    # not take, and those words join the others; an unknown --flag is still argparse's error
    args, extra = parser.parse_known_args(argv)
    unknown = [word for word in extra if word.startswith("-")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.words = [*getattr(args, "words", []), *extra]
    from cotdistill.errors import UserError

    # the library logs to "cotdistill.*"; the command line shows those messages, one per line, on stderr
    package_logger = logging.getLogger("cotdistill")
    if not any(isinstance(h, _StderrHandler) for h in package_logger.handlers):
        package_logger.addHandler(_StderrHandler())
    package_logger.setLevel(logging.INFO)

    try:
        command = args.command_spec
        config = command_config(command, args)
        if args.print_config:
            from cotdistill.config import dump_config

            print(dump_config(config), end="")
            code = 0
        else:
            if args.threads is not None or args.command in THREADED_COMMANDS:
                from cotdistill.threads import configure_threads

                configure_threads(args.threads)
            code = command.run(config)
        sys.stdout.flush()  # a closed pipe is met here, where it is answered, not in the interpreter's last flush
    except (UserError, *USER_OS_ERRORS) as err:
        if args.debug:
            raise
        print(f"error: {one_line(err)}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:  # Ctrl-C: the user knows why it stopped; 128 + SIGINT, as a shell reports it
        if args.debug:
            raise
        print("interrupted", file=sys.stderr)
        code = 130
    except BrokenPipeError:  # `cotdistill compare … | head`: the reader has what it wanted
        if args.debug:
            raise
        _silence_stdout()
        code = 141  # 128 + SIGPIPE, as a shell reports a writer whose reader left
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from cotdistill.distributed import exit_launched_process

        exit_launched_process(int(code or 0))
    return code


if __name__ == "__main__":
    sys.exit(main())
