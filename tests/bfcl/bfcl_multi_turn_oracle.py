"""BFCL's own multi-turn checker as an oracle, run inside the bfcl-eval virtualenv (never in the project's).

Reads one JSON case per stdin line ({"entry": the BFCL entry with its "ground_truth", "category",
"model_turns": turns → steps → call strings}) and writes {"valid", "error_type"} per line.
"""

import json
import sys

from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker

for n, line in enumerate(sys.stdin):
    case = json.loads(line)
    entry = case["entry"]
    try:
        result = multi_turn_checker(case["model_turns"], entry["ground_truth"], entry, case["category"], f"oracle{n}")
        verdict = {"valid": bool(result["valid"]), "error_type": result.get("error_type", "")}
    except Exception as exc:  # a crash of BFCL's checker is a verdict we record
        verdict = {"crash": f"{type(exc).__name__}: {exc}"[:200]}
    sys.stdout.write(json.dumps(verdict) + "\n")
