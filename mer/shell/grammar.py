"""mer's one grammar: NOUN VERB ARGS (``model set m description two words``), plus the
shorthands people type: aliases for whole commands (``models``, ``show``, the Rust MER's
``model-list`` ...) and a noun's default verb (``runs`` lists, ``runs 1c7a`` shows).

A shorthand is rewritten to the full command before it is parsed, so each command has
one parser, one help page and one handler.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ALIASES", "NOUNS", "Noun", "canonical", "for_completion"]


@dataclass(frozen=True)
class Noun:
    verbs: tuple[str, ...]
    bare: str | None  # the verb of the noun alone or followed by an --option
    named: str | None  # the verb of the noun followed by a name (`runs 1c7a`)
    names: int = 1  # how many names that verb takes (more words: a mistyped verb)


NOUNS: dict[str, Noun] = {
    "model": Noun(("list", "show", "add", "set", "remove", "enable", "disable", "alias",
                   "unalias"), "list", "show"),
    "param": Noun(("show", "set", "unset"), None, "show"),
    "weights": Noun(("show", "history", "set", "rollback", "remove"), None, "show", names=2),
    "server": Noun(("list", "show", "add", "set", "remove", "trust", "ping"), "list", "show"),
    "runs": Noun(("list", "show", "artifact", "wait", "export", "replay", "prune"), "list",
                 "show"),
    "pipeline": Noun(("list", "show", "add", "remove", "run"), "list", "show"),
}

# Whole-command shorthands: today's spellings and the names the original Rust MER used.
ALIASES: dict[str, str] = {
    "models": "model list", "show": "model show", "set": "model set",
    "servers": "server list", "ping": "server ping",
    "pipelines": "pipeline list",
    "model-list": "model list", "ls": "model list", "model-info": "model show",
    "model-ping": "server ping", "model-execute": "run", "model-modify": "model set",
    "model-create": "model add", "model-delete": "model remove",
    "model-continuous-feedback": "feed",
}

_HELP_FLAGS = ("-h", "--help")


def canonical(command: str, args: list[str]) -> list[str] | None:
    """The full words of a shorthand command line (command included), or None when the
    line is already in the one grammar."""
    if command == "help" and args and args[0] in ALIASES:
        return ["help", *ALIASES[args[0]].split(), *args[1:]]
    noun = NOUNS.get(command)
    if noun is None:
        return None
    first = args[0] if args else None
    if first in noun.verbs or first in _HELP_FLAGS:
        return None
    if command == "param" and len(args) > 1 and args[1] in noun.verbs:
        return [command, args[1], args[0], *args[2:]]  # `param MODEL set KEY VALUE`
    if command == "weights" and "--history" in args:
        rest = [a for a in args if a != "--history"]
        return [command, "history", *rest]  # `weights MODEL NAME --history`
    if first is None or first.startswith("-"):
        verb = noun.bare
    else:
        words = next((i for i, a in enumerate(args) if a.startswith("-")), len(args))
        verb = noun.named if words <= noun.names else None
    return None if verb is None else [command, verb, *args]


def for_completion(line: str, begidx: int) -> tuple[str, int]:
    """The line as Tab reads it, and where the word being completed now starts: the
    whole words before that word in the one grammar, so a shorthand completes as its
    full command does (``weights lin `` as ``weights show lin ``)."""
    words = line[:begidx].split()
    full = canonical(words[0], words[1:]) if len(words) > 1 else None
    if full is None:
        return line, begidx
    head = " ".join(full) + " "
    return head + line[begidx:], len(head)
