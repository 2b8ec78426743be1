"""BFCL's own multi-turn executor as an oracle, run inside the bfcl-eval virtualenv (never in the project's).

Reads one JSON trajectory per stdin line ({"id", "category", "initial_config", "involved_classes", "turns": [[call
strings]]}), executes it with BFCL's ``execute_multi_turn_func_call`` turn by turn, and writes {"results": [[...]],
"state": {...}} per line: each call's result text and, at the end, every instance's public attributes as JSON
(objects as {"__class__": name, ...their attributes}).
"""

import json
import sys

from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_utils import execute_multi_turn_func_call


def plain(value):
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        items = [plain(v) for v in value]
        return sorted(items, key=json.dumps) if isinstance(value, set) else items
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if hasattr(value, "__dict__"):
        return {
            "__class__": type(value).__name__,
            **{k: plain(v) for k, v in vars(value).items() if k != "parent" and not k.startswith("_")},
        }
    return str(value)


for n, line in enumerate(sys.stdin):
    case = json.loads(line)
    results, instances = [], {}
    for turn in case["turns"]:
        out, instances = execute_multi_turn_func_call(
            turn,
            case["initial_config"],
            case["involved_classes"],
            f"oracle{n}",
            case["id"],
            long_context="long_context" in case["category"],
            is_evaL_run=True,
        )
        results.append(out)
    state = {
        name: {k: plain(v) for k, v in vars(inst).items() if not k.startswith("_")} for name, inst in instances.items()
    }
    sys.stdout.write(json.dumps({"results": results, "state": state}) + "\n")
