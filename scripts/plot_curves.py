"""Draw the curves of one or more runs on the same axes: loss, audio gap, dev WER.

    python scripts/plot_curves.py runs/a runs/b --labels paper chat --output docs/curves.png
"""

from __future__ import annotations

import argparse

from speechllm.training.curves import plot_runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run folders (or their metrics.jsonl)")
    parser.add_argument("--labels", nargs="+", help="one name per run (default: the folder names)")
    parser.add_argument("--output", default="curves.png", help="PNG to write (default: curves.png)")
    args = parser.parse_args()
    if args.labels and len(args.labels) != len(args.runs):
        parser.error(f"--labels: {len(args.labels)} names for {len(args.runs)} runs")
    print(plot_runs(args.runs, args.output, args.labels))


if __name__ == "__main__":
    main()
