"""Every error is one line on stderr. An internal error (a bug: not a MerError) names
mer's log file, which holds its traceback; a command's bad arguments name the command
and its help. In-process shells, and mer's entry point (`mer -c ...`) in-process."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import cmd2
import pytest

from mer.bootstrap import Runtime
from mer.config import Settings, load_settings
from mer.logfile import close_logging, setup_logging
from mer.services.context import ServiceContext
from tests.fakes import FakeExecutor, FakeRegistry
from tests.faults.shell_harness import InProcessShell
from tests.shell.conftest import Mer


def _broken_uow() -> object:
    raise ValueError("the fake unit of work is broken\non two lines")


async def _broken_runtime(settings: Settings) -> Runtime:
    ctx = ServiceContext(uow=_broken_uow, executors=FakeRegistry(FakeExecutor()),  # type: ignore[arg-type]
                         allow_edit=settings.allow_edit, actor="tester")
    return Runtime(settings=settings, ctx=ctx)


@pytest.fixture
def shell_with(tmp_path: Path) -> Iterator:
    made: list[InProcessShell] = []

    def make(**options: object) -> InProcessShell:
        settings = Settings(data_dir=tmp_path / "data", allow_edit=True, **options)  # type: ignore[arg-type]
        setup_logging(settings)  # as `mer` does
        made.append(InProcessShell(settings, runtime=_broken_runtime))
        return made[-1]

    yield make
    for shell in made:
        shell.close()
    close_logging()


def test_an_internal_error_is_one_line_naming_the_log_that_holds_the_traceback(shell_with,
                                                                                tmp_path: Path) -> None:
    log_file = tmp_path / "data" / "mer.log"  # the default: in the data directory
    shell = shell_with()
    assert not log_file.exists()  # created when first written, not before
    done = shell("models")
    assert done.failed and done.exit_code == 1 and done.out == ""
    assert done.err.splitlines() == [
        "internal error: ValueError: the fake unit of work is broken on two lines "
        f"(details in {log_file})"]
    text = log_file.read_text()
    assert "Traceback (most recent call last)" in text and "_broken_uow" in text
    assert "ValueError: the fake unit of work is broken" in text


def test_the_log_file_is_configurable_and_its_directory_made(shell_with, tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "deep" / "errors.log"
    done = shell_with(log_file=log_file)("show echo")
    assert done.err.splitlines() == [
        "internal error: ValueError: the fake unit of work is broken on two lines "
        f"(details in {log_file})"]
    assert "Traceback" in log_file.read_text()


def test_a_log_that_cannot_be_written_fails_no_command_and_says_so(shell_with,
                                                                   tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    log_file = tmp_path / "a-file" / "mer.log"  # its directory is a file
    shell = shell_with(log_file=log_file)
    done = shell("models")
    assert done.exit_code == 1
    [line] = done.err.splitlines()
    assert line.startswith("internal error: ValueError: the fake unit of work is broken")
    assert f"could not be written to {log_file}" in line
    assert "Traceback" not in done.err
    assert shell("help models").err == ""  # the shell goes on


def test_with_debug_the_traceback_is_shown_too(shell_with, tmp_path: Path) -> None:
    done = shell_with(debug=True)("models")
    assert "Traceback (most recent call last)" in done.err
    assert done.err.splitlines()[-1].startswith("internal error: ValueError: ")


def test_an_error_outside_a_command_is_one_line_too(shell_with, tmp_path: Path) -> None:
    shell = shell_with()

    def broken_hook(data: cmd2.plugin.PostcommandData) -> cmd2.plugin.PostcommandData:
        raise KeyError("hook")

    shell.shell.register_postcmd_hook(broken_hook)
    done = shell("help")
    assert done.failed and done.exit_code == 1
    assert done.err.splitlines() == [
        f"internal error: KeyError: 'hook' (details in {tmp_path / 'data' / 'mer.log'})"]
    assert "broken_hook" in (tmp_path / "data" / "mer.log").read_text()


@pytest.mark.parametrize(("line", "expected"), [
    ("run", "error: run: the following arguments are required: model (see `help run`)"),
    ("runs --limit x", "error: runs list: argument --limit: invalid int value: 'x' (see "
                       "`help runs list`)"),
    ("model add m", "error: model add: the following arguments are required: --server "
                    "(see `help model add`)"),
    ("param m frob k", "error: param: argument VERB: invalid choice: 'm' (choose from "
                       "'set', 'show', 'unset') (see `help param`)"),
    ("alias create", "error: alias create: the following arguments are required: name, "
                     "command, command_args (see `help alias create`)"),
])
def test_bad_arguments_are_one_line(shell_with, line: str, expected: str) -> None:
    done = shell_with()(line)
    assert done.failed and done.exit_code == 2 and done.out == ""
    assert done.err.splitlines() == [expected]


def test_help_is_not_an_error(shell_with) -> None:
    done = shell_with()("run --help")
    assert not done.failed and done.err == "" and "--input" in done.out


def test_log_file_setting() -> None:
    assert Settings(data_dir=Path("/d")).resolved_log_file == Path("/d/mer.log")
    settings = load_settings(environ={"MER_LOG_FILE": "/x/y.log", "MER_ENV_FILE": os.devnull})
    assert settings.resolved_log_file == Path("/x/y.log")


def test_a_script_sees_one_line_per_error_and_fails(tmp_path: Path) -> None:
    """`mer -c ...`: a bad command line and an internal error (a model row
    whose command is not a list, as a hand-edited database may hold) are one line each,
    the rest of the script runs, the exit status is 1 and the traceback is in the log."""
    mer = Mer(tmp_path)
    log_file = tmp_path / "logs" / "mer.log"
    mer.env["MER_LOG_FILE"] = str(log_file)
    db = sqlite3.connect(tmp_path / "data" / "mer.db")
    with db:
        db.execute("UPDATE models SET command = '5' WHERE name = 'echo'")
    db.close()
    done = mer.main("-c", "run", "-c", "runs --limit x", "-c", "show echo", "-c", "servers")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "-c 1: error: run: the following arguments are required: model (see `help run`)",
        "-c 2: error: runs list: argument --limit: invalid int value: 'x' (see `help runs list`)",
        f"-c 3: internal error: TypeError: 'int' object is not iterable (details in {log_file})",
    ]
    assert "local" in done.stdout  # the rest of the script ran
    assert "Traceback (most recent call last)" in log_file.read_text()



def test_a_bad_flag_of_mer_itself_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """argparse printed its whole usage block, then the error."""
    from mer import cli, cli_migrate

    for main, argv, prog in ((cli.main, ["--bogus"], "mer"),
                             (cli_migrate.main, ["up", "--bogus"], "mer-migrate")):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
        out, err = capsys.readouterr()
        assert out == ""
        assert err.splitlines() == [
            f"{prog}: error: unrecognized arguments: --bogus (see `{prog} --help`)"]
