"""The shortcuts of parsing a command line (mer/shell/parsing.py) give exactly what cmd2,
shlex and argparse give the long way: a plain line split without shlex, its words taken
from the tokens it was parsed into, and a positional-only command parsed without
argparse's option matching."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest
from cmd2.argparse_utils import Cmd2ArgumentParser
from cmd2.parsing import StatementParser

from mer.shell.parsing import BadArguments, LiteralStatementParser, MerArgumentParser
from tests.shell.harness import ShellOnFakes

LINES = ["run t", "model set m description \"two words\"", "x 'a b' c\"d e\"f", "x \"a\"b 'c'",
         "x a;b|c>d", "x  many   spaces  ", "x \"\" ''", "x '\"' \"it's\"", "x --data '{\"k\": 1}'"]


@pytest.mark.parametrize("line", LINES)
@pytest.mark.parametrize("preserve_quotes", [True, False])
def test_a_lines_words_are_the_words_cmd2_would_split_again(line: str, preserve_quotes: bool) -> None:
    parser = LiteralStatementParser(terminators=[], shortcuts={})
    statement = parser.parse(line)
    shortcut = parser.get_command_arg_list(statement.command, statement, preserve_quotes)
    long_way = StatementParser.get_command_arg_list(parser, statement.command, statement,
                                                    preserve_quotes)
    assert shortcut == long_way
    assert shortcut[1], "the shortcut was not taken"
    # Another statement than the one parsed last goes the long way.
    parser.parse("other words")
    assert parser.get_command_arg_list(statement.command, statement, preserve_quotes) == long_way


def test_a_plain_lines_tokens_are_the_ones_shlex_gives() -> None:
    import random

    from cmd2.parsing import shlex_split

    parser = LiteralStatementParser(terminators=[], shortcuts={})
    alphabet = "ab -_=;|>&*é\u00a0\u2003\t\n#'\"\\"
    lines = ["run t", "  run   t  ", "", "x é ü", "x a\u00a0b", "x\ta", "# note", "x #1", "x a\\ b"]
    lines += ["".join(random.Random(seed).choices(alphabet, k=12)) for seed in range(2000)]
    for line in lines:
        try:
            expected = shlex_split(line) if not line.lstrip().startswith("#") else []
        except ValueError:
            continue  # an unclosed quote: the long way raises, as before
        assert parser.tokenize(line) == expected, repr(line)


def _parsers(shell: ShellOnFakes) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every command's parser, and every verb's."""
    app = shell.shell
    for name in app.get_all_commands():
        parser = app.command_parsers.get(app.get_command_func(name))  # type: ignore[arg-type]
        todo = [(name, parser)] if parser is not None else []
        while todo:
            where, p = todo.pop()
            yield where, p
            for action in p._actions:
                if isinstance(action, argparse._SubParsersAction):
                    todo.extend((f"{where} {verb}", sub) for verb, sub in action.choices.items())


def test_every_positional_only_command_parses_as_argparse_would() -> None:
    shell = ShellOnFakes()
    try:
        checked = []
        for where, parser in _parsers(shell):
            assert isinstance(parser, MerArgumentParser), where
            shortcut = parser.shortcut()
            if shortcut is None:
                continue
            positionals = shortcut.positionals
            words = [str(next(iter(a.choices))) if a.choices else "1" for a in positionals]
            fast = parser.parse_args(words)
            slow = Cmd2ArgumentParser.parse_args(parser, words)
            assert vars(fast) == vars(slow), where
            checked.append(where)
        assert {"run", "train", "runs show", "model show"} <= set(checked)
    finally:
        shell.close()


def _error(parser: argparse.ArgumentParser, words: list[str]) -> str:
    with pytest.raises(BadArguments) as raised:
        parser.parse_args(words)
    return raised.value.message


def test_the_shortcut_is_not_taken_for_options_or_a_wrong_count() -> None:
    parser = MerArgumentParser(prog="cmd")
    parser.add_argument("model")
    parser.add_argument("--n", type=int, default="3")
    parser.add_argument("--tag", action="append")
    shortcut = parser.parse_args(["m"])
    assert vars(shortcut) == {"model": "m", "n": 3, "tag": None}  # a text default converted
    assert vars(parser.parse_args(["m", "--n", "5"])) == {"model": "m", "n": 5, "tag": None}
    assert vars(parser.parse_args(["--n=5", "m"])) == {"model": "m", "n": 5, "tag": None}
    assert "unrecognized arguments: extra" in _error(parser, ["m", "extra"])
    assert "required: model" in _error(parser, [])


def test_a_bad_word_is_the_same_one_line_error() -> None:
    parser = MerArgumentParser(prog="cmd")
    parser.add_argument("count", type=int)
    parser.add_argument("color", choices=["red", "blue"])
    assert parser.shortcut() is not None
    with pytest.raises(BadArguments) as fast:
        parser.parse_args(["x", "red"])
    with pytest.raises(BadArguments) as slow:
        Cmd2ArgumentParser.parse_args(parser, ["x", "red"])
    assert fast.value.message == slow.value.message
    assert "invalid int value: 'x'" in fast.value.message
    assert "invalid choice: 'green'" in _error(parser, ["1", "green"])


def test_required_options_and_groups_take_the_long_way() -> None:
    required = MerArgumentParser(prog="cmd")
    required.add_argument("model")
    required.add_argument("--to", required=True)
    assert required.shortcut() is None
    assert "required: --to" in _error(required, ["m"])
    group = MerArgumentParser(prog="cmd")
    group.add_argument("model")
    group.add_mutually_exclusive_group(required=True).add_argument("--a", action="store_true")
    assert group.shortcut() is None
    later = MerArgumentParser(prog="cmd")
    later.add_argument("model")
    assert later.shortcut() is not None
    later.set_defaults(handler="h")  # a default set later is seen
    assert vars(later.parse_args(["m"])) == {"model": "m", "handler": "h"}
    later.add_argument("more", nargs="*")  # an action added later is seen
    assert later.shortcut() is None
