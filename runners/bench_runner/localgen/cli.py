"""`bench-runner local-gen`: prefill and generation tokens/s from the command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from .measure import GenResult, measure_in_process, measure_server, server_prompt_count


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("local-gen", help="prefill and generation tokens/s (llama-bench style)")
    p.add_argument("--base-url", help="measure against this running server")
    p.add_argument(
        "--reference-engine", action="store_true", help="start the reference engine and measure it"
    )
    p.add_argument("--in-process", action="store_true", help="use llama_cpp.Llama in this process")
    p.add_argument("--model-path", default=None, help="GGUF for --in-process (default: the reference model)")
    p.add_argument("--model", default="")
    p.add_argument("--engine", default="generic", help="EOS handling, as for serve-bench")
    p.add_argument("--eog-token", action="append", default=[])
    p.add_argument("-p", "--prompt-len", default="128", help="prompt lengths, comma list")
    p.add_argument("-n", "--gen-len", default="64", help="generation lengths, comma list")
    p.add_argument("-r", "--repetitions", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", dest="json_file", default=None, help="write summaries here")
    p.add_argument("--records-file", default=None, help="write ResultRecords JSON here")
    p.set_defaults(func=run_cli)


def run_cli(args: argparse.Namespace) -> int:
    results: list[GenResult] = []
    pairs = [(pp, tg) for pp in _ints(args.prompt_len) for tg in _ints(args.gen_len)]
    if args.in_process:
        from ..engine.reference import reference_model_path

        path = args.model_path or reference_model_path()
        for pp, tg in pairs:
            results.append(
                measure_in_process(path, pp, tg, repetitions=args.repetitions, n_threads=args.threads)
            )
    else:
        engine = None
        base_url, model, eng, eog = args.base_url, args.model, args.engine, list(args.eog_token)
        if args.reference_engine:
            import tempfile

            from ..engine import REFERENCE_EOG_TOKENS, reference_engine_command

            cmd = reference_engine_command(n_threads=args.threads)
            engine = cmd.process(Path(tempfile.gettempdir()) / f"reference-engine-{cmd.port}.log")
            engine.start()
            engine.wait_healthy()
            base_url, model, eng, eog = (
                cmd.base_url,
                cmd.model,
                "llama-cpp-python",
                list(REFERENCE_EOG_TOKENS),
            )
        if not base_url:
            print("local-gen: give --base-url, --reference-engine or --in-process", file=sys.stderr)
            return 2
        try:
            per_pair = server_prompt_count(args.repetitions)
            for n, (pp, tg) in enumerate(pairs):
                results.append(
                    asyncio.run(
                        measure_server(
                            base_url,
                            pp,
                            tg,
                            repetitions=args.repetitions,
                            model=model,
                            engine=eng,
                            eog_tokens=eog,
                            first_index=n * per_pair,  # no pair reuses another's prompts
                        )
                    )
                )
        finally:
            if engine is not None:
                engine.stop()
    print(f"| {'mode':<10} | {'test':>12} | {'t/s':>20} |")
    print(f"| {'-' * 10} | {'-' * 12}:| {'-' * 20}:|")
    for r in results:
        s = r.summary()
        for label, key in ((f"pp{r.prompt_len}", "prefill_tok_s"), (f"tg{r.gen_len}", "generation_tok_s")):
            value = s[key]
            shown = f"{value:.2f} ± {s[key + '_std']:.2f}" if value is not None else "n/a"
            print(f"| {r.mode:<10} | {label:>12} | {shown:>20} |")
    if args.json_file:
        Path(args.json_file).write_text(json.dumps([r.summary() for r in results], indent=1))
    if args.records_file:
        recs = [rec.to_json() for r in results for rec in r.to_result_records()]
        Path(args.records_file).write_text(json.dumps(recs, indent=1))
    return 0
