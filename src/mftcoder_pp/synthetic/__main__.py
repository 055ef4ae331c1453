"""`python -m mftcoder_pp.synthetic OUT_DIR [--seed N] ...`: write the suite as JSONL files and print the counts."""

from __future__ import annotations

import argparse
import json

from .suite import SuiteSettings, generate_suite, write_suite


def main(argv: list[str] | None = None) -> dict:
    defaults = SuiteSettings()
    parser = argparse.ArgumentParser(prog="python -m mftcoder_pp.synthetic", description=__doc__)
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--test-fraction", type=float, default=defaults.test_fraction)
    parser.add_argument("--transfer-per-language", type=int, default=defaults.transfer_per_language,
                        help="cap on transfer combinations per language (0: no cap)")
    parser.add_argument("--pretrain-fraction", type=float, default=defaults.pretrain_fraction,
                        help="share of each family's non-test combinations in the pretraining pool")
    parser.add_argument("--heldout-families", type=int, default=defaults.heldout_families)
    args = parser.parse_args(argv)
    try:
        suite = generate_suite(args.seed, test_fraction=args.test_fraction,
                               transfer_per_language=args.transfer_per_language or None,
                               pretrain_fraction=args.pretrain_fraction, heldout_families=args.heldout_families)
    except ValueError as exc:
        parser.error(str(exc))
    counts = write_suite(suite, args.out_dir)
    print(json.dumps(counts, indent=2))
    return counts


if __name__ == "__main__":
    main()
