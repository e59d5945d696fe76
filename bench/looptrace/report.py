"""Print a loop trace written by ``bench/looptrace/sitecustomize.py``.

.venv/bin/python bench/looptrace/report.py bench/results/reach_burst-sqlite-looptrace.<pid>.json [--from HH:MM:SS] [--to HH:MM:SS]
"""

from __future__ import annotations

import argparse
import json
import time


def clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trace")
    parser.add_argument("--from", dest="start", default="", help="UTC time of day, HH:MM:SS")
    parser.add_argument("--to", dest="end", default="99")
    args = parser.parse_args()
    with open(args.trace) as handle:
        trace = json.load(handle)

    def shown(at: float) -> bool:
        return args.start <= clock(at) <= args.end

    print("loop turns whose callbacks ran over 10 ms: when, ms, callbacks, the ones that took most (ms)")
    for at, busy, count, top in trace["long_turns"]:
        if shown(at):
            print(f"  {clock(at)}  {busy:7.1f}  {count:5d}  " + "; ".join(f"{name} {ms}" for name, ms in top[:3]))
    print("the dial path's waits for the database turn over 5 ms: when, ms, who waited, who held it last")
    for at, waited, name, holder in trace["db_waits"]:
        if shown(at):
            print(f"  {clock(at)}  {waited:7.1f}  {name}  <-  {holder}")
    print("garbage collections over 5 ms: when, generation, ms, objects collected")
    for at, generation, took, collected in trace.get("collections", []):
        if shown(at):
            print(f"  {clock(at)}  {generation}  {took:7.1f}  {collected}")
    print("database turns held over 10 ms: when released, ms, by")
    for at, held, name in trace["db_holds"]:
        if shown(at):
            print(f"  {clock(at)}  {held:7.1f}  {name}")


if __name__ == "__main__":
    main()
