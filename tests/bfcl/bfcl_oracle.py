"""BFCL's own AST checker as an oracle, run inside the bfcl-eval virtualenv (never in the project's).

Reads one JSON case per stdin line ({"category", "language", "functions", "model_output", "possible_answer"})
and writes one JSON verdict per line ({"valid", "error_type"}; {"crash": "..."} when BFCL's checker raises).
BFCL's checker imports its model registry (every provider SDK) only to ask whether a model writes dotted names
with underscores; a stub registry answering "no" stands in, so the checker runs with the standard library alone.
"""

import json
import sys
import types
from dataclasses import dataclass


@dataclass
class _Config:
    underscore_to_dot: bool = False


class _Registry(dict):
    def __missing__(self, key):
        return _Config()


stub = types.ModuleType("bfcl_eval.constants.model_config")
stub.MODEL_CONFIG_MAPPING = _Registry()
sys.modules["bfcl_eval.constants.model_config"] = stub

from bfcl_eval.constants.enums import Language  # noqa: E402
from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker  # noqa: E402

for line in sys.stdin:
    case = json.loads(line)
    try:
        result = ast_checker(
            case["functions"],
            case["model_output"],
            case["possible_answer"],
            Language(case["language"]),
            case["category"],
            "resrl-differential",
        )
        verdict = {"valid": bool(result["valid"]), "error_type": result.get("error_type", "")}
    except Exception as exc:  # a crash of BFCL's checker is a verdict we record, not a failure of the oracle
        verdict = {"crash": f"{type(exc).__name__}: {exc}"[:200]}
    sys.stdout.write(json.dumps(verdict) + "\n")
