"""The executor's command line (parsed by hand, see ``options.py``)."""

from __future__ import annotations

import pytest

from resrl.sandbox import options


def test_the_options_it_takes():
    assert options.parse(["--stdio"])["stdio"] is True
    opts = options.parse(["--socket", "/run/x.sock", "--base=/b", "--allow-network", "--allow-host-files",
                          "--cpu", "3"])  # fmt: skip
    assert opts == {"stdio": False, "socket": "/run/x.sock", "base": "/b", "allow_network": True,
                    "allow_host_files": True, "cpu": 3}  # fmt: skip
    assert options.parse(["--stdio", "--cpu=0"])["cpu"] == 0 and options.parse(["--stdio"])["cpu"] is None
    assert options.parse(["--stdio"])["base"].endswith("resrl-sandbox")


@pytest.mark.parametrize("argv", [[], ["--stdio", "--socket", "/s"], ["--socket"], ["--stdio", "--bogus"],
                                  ["--stdio=1"], ["--stdio", "--base"], ["--stdio", "--cpu"],
                                  ["--stdio", "--cpu=-1"], ["--stdio", "--cpu", "one"]])  # fmt: skip
def test_a_bad_command_line_is_refused_with_the_usage(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        options.parse(argv)
    assert "usage: executor.py" in str(exit_.value.code) and "error:" in str(exit_.value.code)


def test_help_prints_the_usage(capsys):
    with pytest.raises(SystemExit) as exit_:
        options.parse(["--help"])
    assert exit_.value.code == 0 and "--allow-host-files" in capsys.readouterr().out
