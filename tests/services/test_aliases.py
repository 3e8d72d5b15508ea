"""Versions and aliases as use cases, on the in-memory fakes: `model alias` (rules, audit,
moving), `m@live` wherever a model is taken, a run recording the version it resolved and
the alias it was called by, and `model add m@2 --from m@1` copying a version."""

from __future__ import annotations

import pytest

from mer.domain import ModelConfig, RunRecord, Server, WeightRevision, WorkerInfo, utcnow
from mer.errors import AlreadyExists, EditNotAllowed, ModelNotFound, NotFound, UsageError
from mer.services import aliases as alias_svc
from mer.services import models as model_svc
from mer.services import runs as run_svc
from mer.services import servers as server_svc
from mer.services import versions as version_svc
from mer.services import weights as weight_svc
from mer.services.context import ServiceContext, UowRunLog
from tests.fakes import FakeExecutor, FakeRegistry, FakeStore, FakeUnitOfWork


def _ctx(store: FakeStore, executor: FakeExecutor, allow_edit: bool = True) -> ServiceContext:
    return ServiceContext(uow=lambda: FakeUnitOfWork(store), executors=FakeRegistry(executor),
                          allow_edit=allow_edit, actor="ann")


async def _weight(ctx: ServiceContext, ref: str, name: str) -> WeightRevision:
    [w] = await weight_svc.show_weights(ctx, ref, name)
    return w


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def executor() -> FakeExecutor:
    return FakeExecutor()


@pytest.fixture
async def ctx(store: FakeStore, executor: FakeExecutor) -> ServiceContext:
    """`m@1` (weights w, b; parameter bias) and `m@2` (a weight w of its own)."""
    c = _ctx(store, executor)
    await server_svc.add_server(c, Server(name="local"))
    await server_svc.add_server(c, Server(name="other"))
    await model_svc.add_model(c, ModelConfig(name="m", server="local", command=["python3", "m.py"],
                                             env={"A": "1"}, timeout=7.0, description="first",
                                             train_command=["python3", "t.py"], mode="worker",
                                             framing="mer", workdir="/srv"))
    await weight_svc.set_weights(c, "m@1", "w", [1.0, 2.0])
    await weight_svc.set_weights(c, "m@1", "w", [3.0, 4.0])  # revision 2 is current
    await weight_svc.set_weights(c, "m@1", "b", [0.5], new=True)
    await model_svc.set_param(c, "m@1", "bias", "0.5")
    await model_svc.add_model(c, ModelConfig(name="m", version="2", server="local",
                                             command=["python3", "m2.py"]))
    await weight_svc.set_weights(c, "m@2", "w", [9.0])
    return c


async def test_an_alias_names_a_version_everywhere_a_model_is_taken(ctx, store, executor) -> None:
    done = await alias_svc.set_alias(ctx, "m", "live", "1")
    assert (done.alias.ref, done.alias.target, done.before, done.unchanged) == ("m@live", "m@1",
                                                                                 None, False)
    assert (await model_svc.show_model(ctx, "m@live")).model.version == "1"
    assert (await model_svc.show_model(ctx, "m@1")).aliases == ("live",)
    assert (await model_svc.show_model(ctx, "m@2")).aliases == ()
    assert (await _weight(ctx, "m@live", "w")).revision == 2
    await model_svc.set_param(ctx, "m@live", "k", "1")  # an edit through the alias
    assert (await model_svc.show_model(ctx, "m@1")).parameters == {"bias": 0.5, "k": 1}
    record, _ = await run_svc.run_model(ctx, "m@live")
    assert (record.version, record.alias) == ("1", "live")
    assert executor.requests[-1].version == "1"
    assert store.runs[record.id].alias == "live"  # the row written at start says so
    record, _ = await run_svc.run_model(ctx, "m@1")  # called by its version: no alias
    assert (record.version, record.alias) == ("1", None)
    assert await alias_svc.aliases_by_ref(ctx) == {"m@1": ["live"]}


async def test_moving_an_alias_is_one_audited_edit_and_the_next_run_follows(ctx, store) -> None:
    await alias_svc.set_alias(ctx, "m", "live", "1")
    record, _ = await run_svc.run_model(ctx, "m@live")
    assert record.version == "1"
    audited = len(store.audit)
    moved = await alias_svc.set_alias(ctx, "m", "live", "2")
    assert (moved.before, moved.alias.version) == ("1", "2")
    assert len(store.audit) == audited + 1
    entry = store.audit[-1]
    assert (entry.actor, entry.action, entry.target) == ("ann", "alias.move", "model m@live")
    assert (entry.before, entry.after) == ({"version": "1"}, {"version": "2"})
    record, _ = await run_svc.run_model(ctx, "m@live")
    assert (record.version, record.alias) == ("2", "live")
    again = await alias_svc.set_alias(ctx, "m", "live", "2")
    assert again.unchanged and len(store.audit) == audited + 1  # nothing to store
    # An alias of an alias names where that one points, not the alias.
    prod = await alias_svc.set_alias(ctx, "m", "prod", "live")
    assert prod.alias.version == "2"
    gone = await alias_svc.remove_alias(ctx, "m", "live")
    assert gone.version == "2" and store.audit[-1].action == "alias.remove"
    with pytest.raises(ModelNotFound):
        await run_svc.run_model(ctx, "m@live")
    with pytest.raises(NotFound, match="model 'm' has no alias 'live'"):
        await alias_svc.remove_alias(ctx, "m", "live")


@pytest.mark.parametrize(("name", "alias", "version", "error", "message"), [
    ("m", "3", "1", UsageError, "must start with a letter"),  # never looks like a version
    ("m", "2b", "1", UsageError, "must start with a letter"),
    ("m", "a b", "1", UsageError, "must start with a letter"),
    ("m", "l" * 51, "1", UsageError, "at most 50"),
    ("m@1", "live", "1", UsageError, "without @VERSION"),
    ("m", "live", "7", ModelNotFound, "model 'm@7' not found"),
    ("nope", "live", "1", ModelNotFound, "model 'nope@1' not found"),
])
async def test_a_bad_alias_is_one_line_and_stores_nothing(ctx, store, name, alias, version,
                                                          error, message) -> None:
    audited = len(store.audit)
    with pytest.raises(error, match=message):
        await alias_svc.set_alias(ctx, name, alias, version)
    assert store.aliases == {} and len(store.audit) == audited


async def test_an_alias_cannot_take_a_version_name_nor_a_version_an_alias_name(ctx) -> None:
    await model_svc.add_model(ctx, ModelConfig(name="m", version="beta", server="local",
                                               command=["true"]))
    with pytest.raises(UsageError, match="'beta' is a version of 'm'"):
        await alias_svc.set_alias(ctx, "m", "beta", "1")
    await alias_svc.set_alias(ctx, "m", "live", "1")
    with pytest.raises(AlreadyExists, match="is an alias of m@1"):
        await model_svc.add_model(ctx, ModelConfig(name="m", version="live", server="local",
                                                   command=["true"]))


async def test_alias_edits_need_allow_edit(ctx, store, executor) -> None:
    await alias_svc.set_alias(ctx, "m", "live", "1")
    ro = _ctx(store, executor, allow_edit=False)
    with pytest.raises(EditNotAllowed):
        await alias_svc.set_alias(ro, "m", "live", "2")
    with pytest.raises(EditNotAllowed):
        await alias_svc.remove_alias(ro, "m", "live")
    with pytest.raises(EditNotAllowed):
        await version_svc.add_model_from(ro, "m@3", "m@1")
    assert store.aliases[("m", "live")].version == "1" and len(store.models) == 2
    assert [a.ref for a in await alias_svc.list_aliases(ro)] == ["m@live"]  # reading is not editing


async def test_a_version_an_alias_names_cannot_be_removed(ctx) -> None:
    await alias_svc.set_alias(ctx, "m", "live", "1")
    with pytest.raises(UsageError, match=r"'m@1' is m@live; move the alias .* or remove it"):
        await model_svc.remove_model(ctx, "m@1")
    await alias_svc.remove_alias(ctx, "m", "live")
    await model_svc.remove_model(ctx, "m@1")


async def test_a_name_alone_means_its_newest_enabled_version(ctx) -> None:
    record, _ = await run_svc.run_model(ctx, "m")
    assert record.version == "2"
    await model_svc.set_model_enabled(ctx, "m@2", False)
    record, _ = await run_svc.run_model(ctx, "m")
    assert record.version == "1"
    await model_svc.set_model_enabled(ctx, "m@1", False)
    with pytest.raises(UsageError, match="model 'm@2' is disabled"):  # none enabled: the newest
        await run_svc.run_model(ctx, "m")


async def test_a_version_copied_from_another_has_its_config_parameters_and_weights(ctx, store) -> None:
    audited = len(store.audit)
    copied = await version_svc.add_model_from(ctx, "m@3", "m@1")
    new, src = copied.model, copied.source
    assert (new.ref, src.ref) == ("m@3", "m@1") and new.id != src.id
    fields = ("server", "command", "train_command", "mode", "framing", "workdir", "env",
              "timeout", "description", "enabled", "image", "cpus", "memory", "network")
    assert {f: getattr(new, f) for f in fields} == {f: getattr(src, f) for f in fields}
    view = await model_svc.show_model(ctx, "m@3")
    assert view.parameters == {"bias": 0.5}
    weights = {w.name: w for w in await weight_svc.weight_history(ctx, "m@3", "w")}
    assert list(weights) == ["w"] and weights["w"].revision == 1
    w = await _weight(ctx, "m@3", "w")
    assert list(w.values) == [3.0, 4.0]  # the current revision, not the first
    assert (w.author, w.note) == ("ann", "copied from m@1 rev 2")
    assert (await _weight(ctx, "m@3", "b")).note == "copied from m@1 rev 1"
    assert len(store.audit) == audited + 1  # one audited edit
    entry = store.audit[-1]
    assert (entry.action, entry.target, entry.after["from"]) == ("model.add", "model m@3", "m@1")
    assert entry.after["weights"]["w"]["revision"] == 1
    # The copy is its own: editing it leaves m@1 as it was.
    await weight_svc.set_weights(ctx, "m@3", "w", [7.0, 7.0])
    await model_svc.set_param(ctx, "m@3", "bias", "9")
    await model_svc.set_model_field(ctx, "m@3", "timeout", "60")
    old = await model_svc.show_model(ctx, "m@1")
    assert old.parameters == {"bias": 0.5} and old.model.timeout == 7.0
    assert list((await _weight(ctx, "m@1", "w")).values) == [3.0, 4.0]
    assert (await _weight(ctx, "m@1", "w")).revision == 2


async def test_a_copy_takes_the_next_number_changes_and_an_alias_as_its_source(ctx) -> None:
    await alias_svc.set_alias(ctx, "m", "live", "2")
    copied = await version_svc.add_model_from(ctx, "m", "m@live", {"server": "other",
                                                                   "timeout": 3.0})
    assert (copied.model.ref, copied.source.ref) == ("m@3", "m@2")
    assert (copied.model.server, copied.model.timeout, copied.model.command) == (
        "other", 3.0, ["python3", "m2.py"])
    other = await version_svc.add_model_from(ctx, "n", "m@1")  # another name starts at 1
    assert other.model.ref == "n@1"
    assert version_svc.next_version(["1", "2", "10", "beta", "2.1"]) == "11"


@pytest.mark.parametrize(("target", "source", "changes", "error", "message"), [
    ("m@3", "m@9", {}, ModelNotFound, "model 'm@9' not found"),
    ("m@2", "m@1", {}, AlreadyExists, "model 'm@2' already exists"),
    ("m@3", "m@1", {"mode": "daemon"}, UsageError, "mode 'daemon' is not one of"),
    ("m@3", "m@1", {"row_version": 5}, UsageError, "field 'row_version' cannot be set"),
    ("m@3", "m@1", {"server": "gpu9"}, NotFound, "server 'gpu9' not found"),
])
async def test_a_bad_copy_is_one_line_and_stores_nothing(ctx, store, target, source, changes,
                                                         error, message) -> None:
    before = (len(store.models), len(store.weights), len(store.params), len(store.audit))
    with pytest.raises(error, match=message):
        await version_svc.add_model_from(ctx, target, source, changes)
    assert (len(store.models), len(store.weights), len(store.params), len(store.audit)) == before


async def test_stop_by_alias_stops_the_version_it_names(ctx, store, executor) -> None:
    await alias_svc.set_alias(ctx, "m", "live", "1")
    stopped: list[tuple[str, str, str | None]] = []

    class Workers(FakeRegistry):
        def workers(self) -> list[WorkerInfo]:
            return [WorkerInfo(server="local", model="m", version="1", pid=1, started_at=utcnow())]

    async def stop_worker(server, model, version=None):  # noqa: ANN001, ANN202
        stopped.append((server.name, model, version))
        return 1

    executor.stop_worker = stop_worker
    live = ServiceContext(uow=ctx.uow, executors=Workers(executor), actor="ann")
    assert await run_svc.stop_model(live, "m@live") == 1
    assert await run_svc.stop_model(live, "m@2") == 0  # no worker of version 2
    assert await run_svc.stop_model(live, "m") == 1  # a name alone: every version
    assert stopped == [("local", "m", "1"), ("local", "m", None)]


class _FixedGeneration(UowRunLog):
    """A run log over the fakes whose catalog generation never moves: plans are cached."""

    async def catalog_generation(self) -> int | None:
        return 1

    async def start(self, record: RunRecord) -> int | None:
        await super().start(record)
        return 1


async def test_a_cached_run_reads_nothing_of_the_catalog_plain_or_by_alias(ctx, store,
                                                                          executor) -> None:
    await alias_svc.set_alias(ctx, "m", "live", "1")
    opened: list[str] = []

    def uow() -> FakeUnitOfWork:
        opened.append("uow")
        return FakeUnitOfWork(store)

    cached = ServiceContext(uow=uow, executors=FakeRegistry(executor), actor="ann")
    cached.run_log = _FixedGeneration(lambda: FakeUnitOfWork(store))  # not counted: the log
    for ref in ("m", "m@live"):
        await run_svc.run_model(cached, ref)  # reads the plan once
        before = len(opened)
        record, _ = await run_svc.run_model(cached, ref)
        assert len(opened) == before, f"a cached run of {ref} read the catalog"
        assert record.alias == ("live" if ref == "m@live" else None)
