"""The shell starts without what its first command may not need (issue 10's cold start):
each parser is built when its command is first used, a noun's verbs are attached then,
and the services and the domain load with the first command that calls them."""

from __future__ import annotations

import subprocess
import sys

from mer.shell.parsing import Later, parser
from tests.shell.harness import ShellOnFakes


def _built(sh: ShellOnFakes) -> set[str]:
    return {name.rsplit(".", 1)[1] for name in sh.shell.command_parsers._parsers}


def test_no_noun_is_built_until_it_is_used_and_then_it_has_all_its_verbs() -> None:
    sh = ShellOnFakes().seed()
    try:
        assert not {"do_model", "do_weights", "do_server", "do_runs"} & _built(sh)
        done = sh("model list")
        assert "lin" in done.out and not done.failed
        assert "do_model" in _built(sh) and "do_weights" not in _built(sh)
        # The set that owns `model`'s verbs owns `param`'s too: attached once, both work.
        assert "bias" in sh("param show lin").out
        help_text = sh("help model").out
        assert all(v in help_text for v in ("list", "show", "add", "set", "remove"))
        assert "needs --allow-edit" in sh("help weights").out
    finally:
        sh.close()


def test_a_recipe_builds_the_same_parser_each_time_with_its_later_arguments() -> None:
    asked = []
    recipe = parser("Do a thing.")
    recipe.add_argument("name")
    group = recipe.add_mutually_exclusive_group()
    group.add_argument("--a", action="store_true")
    group.add_argument("--b", choices=Later(lambda: asked.append(1) or ["x", "y"]))
    assert asked == []  # nothing is computed until the parser is built
    first, second = recipe(), recipe()
    assert first is not second and asked == [1, 1]
    assert vars(first.parse_args(["n", "--b", "x"])) == {"name": "n", "a": False, "b": "x"}
    assert first.description == "Do a thing."


def test_mer_c_quit_loads_no_service_domain_or_database_module(tmp_path) -> None:
    probe = (
        "import sys\n"
        "from mer.cli import main\n"
        "code = main(['-c', 'quit'])\n"
        "loaded = sorted(n for n, m in sys.modules.items() if n.startswith(('mer.services.',"
        " 'mer.db', 'mer.domain', 'mer.execution', 'sqlalchemy')) and type(m).__name__ == 'module')\n"
        "print(code, loaded)\n"
    )
    env = {"MER_DATA_DIR": str(tmp_path), "MER_ENV_FILE": str(tmp_path / "none"),
           "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.split(" ", 1) == ["0", "['mer.services.names']\n"], done.stderr
