"""mer's commands, one command set per noun (cmd2 CommandSets)."""

from mer.shell.commands.aliases import AliasCommands
from mer.shell.commands.audit import AuditCommands
from mer.shell.commands.models import ModelCommands
from mer.shell.commands.pipelines import PipelineCommands
from mer.shell.commands.running import RunCommands
from mer.shell.commands.runs import RunLogCommands
from mer.shell.commands.runs_prune import RunPruneCommands
from mer.shell.commands.servers import ServerCommands
from mer.shell.commands.shell import ShellCommands
from mer.shell.commands.weights import WeightCommands

COMMAND_SETS = (ModelCommands, WeightCommands, ServerCommands, RunCommands, RunLogCommands,
                RunPruneCommands, AuditCommands, ShellCommands, PipelineCommands,
                AliasCommands)  # AliasCommands: verbs of `model`

__all__ = ["COMMAND_SETS"]
