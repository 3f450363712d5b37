"""The user's names → the recognizer's biasing graph, and live updates of those names.

The names come from the config (``[biasing]``: contacts, devices, areas, custom phrases, per-name
boosts and aliases) and later from MQTT (a retained JSON list on ``assistant/<site>/config/contacts``
or ``.../devices``, or Hermes injection). Each name enters the :class:`ContextGraph` as

* its own spelling, in spoken form ("Zoë" → "zoe", "Kitchen Light 2" → "kitchen light two");
* its aliases, and its sound-alike spellings (:mod:`assistant.asr.soundalike`: "Siobhan" →
  "shivawn", "shiv awn", "shiv on" …), all labelled with the canonical name, so the recognizer
  writes "siobhan" whichever spelling the audio matched;
* for a contact with several words, its first name alone when no other contact shares it
  ("call Siobhan" for Siobhan Kelly);
* each in several token segmentations; with ``activation_prefixes``, only right after one.

Updates are validated before anything changes: :func:`apply_names_update` returns a new
:class:`BiasingVocabulary` or raises :class:`BiasingUpdateError` with a message that says which
entry is wrong and why, and the caller keeps the one it had.

>>> from assistant.asr.tokenizer import Tokenizer
>>> tokenizer = Tokenizer.train(["call ann now", "turn on the kitchen light"] * 20, vocab_size=30)
>>> vocabulary = BiasingVocabulary.build(NamesConfig(contacts=(NameEntry("Ann"),)), tokenizer)
>>> update = b'["kitchen light", {"name": "the light", "boost": 3}]'
>>> updated = apply_names_update(vocabulary, "devices", update)
>>> [entry.name for entry in updated.names.devices], updated.graph is not None
(['kitchen light', 'the light'], True)
>>> apply_names_update(vocabulary, "devices", b'["light", 7]')
Traceback (most recent call last):
...
assistant.asr.biasing.BiasingUpdateError: devices[1]: expected a name (a string) or an object ..., got 7
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, Protocol, get_args

import structlog

from assistant.asr.context_graph import BiasPhrase, ContextGraph
from assistant.asr.soundalike import Pronouncer, SoundAlikes, bundled_common_words
from assistant.asr.tokenizer import Tokenizer
from assistant.config import BiasingConfig
from assistant.textnorm import to_spoken

log = structlog.get_logger(__name__)

NameKind = Literal["contacts", "devices", "areas", "phrases"]
NAME_KINDS: tuple[NameKind, ...] = get_args(NameKind)
MAX_NAMES = 5000  # per list: more is a broken sender, not a phone book
MAX_NAME_CHARS = 200
MAX_BOOST = 20.0

Speller = Callable[[Sequence[str]], Mapping[str, Sequence[str]]]
"""Names → their sound-alike spellings (``SoundAlikes.of_many``)."""


class BiasingUpdateError(ValueError):
    """A names list that cannot be used; the message names the entry and the problem."""


# --------------------------------------------------------------------------- the names


@dataclass(frozen=True)
class NameEntry:
    """One configured name: how it is written, other spellings, and its own bonus per token."""

    name: str
    aliases: tuple[str, ...] = ()
    boost: float | None = None


@dataclass(frozen=True)
class NamesConfig:
    """Everything the user asked to boost, by kind."""

    contacts: tuple[NameEntry, ...] = ()
    devices: tuple[NameEntry, ...] = ()
    areas: tuple[NameEntry, ...] = ()
    phrases: tuple[NameEntry, ...] = ()

    @classmethod
    def from_config(cls, config: BiasingConfig) -> NamesConfig:
        """The ``[biasing]`` lists, with ``boosts`` and ``aliases`` attached by name."""

        def entries(kind: str, names: Sequence[str]) -> tuple[NameEntry, ...]:
            return parse_names(
                [
                    {"name": n, "aliases": config.aliases.get(n, []), "boost": config.boosts.get(n)}
                    for n in names
                ],
                kind,
            )

        return cls(
            contacts=entries("contacts", config.contacts),
            devices=entries("devices", config.devices),
            areas=entries("areas", config.areas),
            phrases=entries("phrases", config.phrases),
        )

    @classmethod
    def of_names(cls, names: Iterable[str], kind: NameKind = "phrases") -> NamesConfig:
        return replace(cls(), **{kind: parse_names(list(names), kind)})

    def of(self, kind: NameKind) -> tuple[NameEntry, ...]:
        entries: tuple[NameEntry, ...] = getattr(self, kind)
        return entries

    def replaced(self, kind: NameKind, entries: Sequence[NameEntry]) -> NamesConfig:
        return replace(self, **{kind: _unique(entries)})

    def added(self, kind: NameKind, entries: Sequence[NameEntry]) -> NamesConfig:
        return self.replaced(kind, [*self.of(kind), *entries])

    def __len__(self) -> int:
        return sum(len(self.of(kind)) for kind in NAME_KINDS)


def _unique(entries: Iterable[NameEntry]) -> tuple[NameEntry, ...]:
    """One entry per spoken name; a later entry replaces an earlier one's aliases and boost."""
    by_name: dict[str, NameEntry] = {}
    for entry in entries:
        by_name[to_spoken(entry.name)] = entry
    return tuple(by_name.values())


def parse_names(payload: bytes | str | Sequence[object], kind: str = "names") -> tuple[NameEntry, ...]:
    """A received list → entries, or :class:`BiasingUpdateError` saying what is wrong.

    Accepted: a JSON list (bytes or text, or the already decoded list) of strings or of objects
    ``{"name": str, "aliases": [str, ...], "boost": number}`` (aliases and boost optional). A
    decoded list may also hold :class:`NameEntry` values: they are checked by the same rules.

    >>> ann, siobhan = parse_names(b'["Ann", {"name": "Siobhan", "aliases": ["shiv on"], "boost": 2.5}]')
    >>> ann, siobhan.aliases, siobhan.boost
    (NameEntry(name='Ann', aliases=(), boost=None), ('shiv on',), 2.5)
    """
    items: object = payload
    if isinstance(payload, bytes | str):
        try:
            items = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as error:
            raise BiasingUpdateError(f"{kind}: not valid JSON ({error})") from None
    if not isinstance(items, list | tuple):
        raise BiasingUpdateError(f"{kind}: expected a JSON list of names, got {_json_type(items)}")
    if len(items) > MAX_NAMES:
        raise BiasingUpdateError(f"{kind}: {len(items)} names is more than the {MAX_NAMES} allowed")
    return _unique(_entry(item, f"{kind}[{index}]") for index, item in enumerate(items))


def _entry(item: object, where: str) -> NameEntry:
    if isinstance(item, NameEntry):  # typed already, but built anywhere: the same rules apply
        item = {"name": item.name, "aliases": list(item.aliases), "boost": item.boost}
    if isinstance(item, str):
        return NameEntry(_name(item, where))
    if not isinstance(item, dict):
        raise BiasingUpdateError(
            f"{where}: expected a name (a string) or an object "
            f'{{"name", "aliases", "boost"}}, got {_show(item)}'
        )
    unknown = sorted(set(item) - {"name", "aliases", "boost"})
    if unknown:
        raise BiasingUpdateError(
            f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; allowed: name, aliases, boost"
        )
    if "name" not in item:
        raise BiasingUpdateError(f'{where}: missing "name"')
    name = _name(item["name"], f"{where}.name")
    aliases = item.get("aliases") or []
    if not isinstance(aliases, list):
        raise BiasingUpdateError(f"{where}.aliases: expected a list of strings, got {_show(aliases)}")
    boost = item.get("boost")
    if boost is not None and (
        isinstance(boost, bool)
        or not isinstance(boost, int | float)
        or not 0.0 <= boost <= MAX_BOOST
        or math.isnan(boost)
    ):
        raise BiasingUpdateError(
            f"{where}.boost: expected a number from 0 to {MAX_BOOST:g}, got {_show(boost)}"
        )
    return NameEntry(
        name,
        tuple(dict.fromkeys(_name(alias, f"{where}.aliases[{i}]") for i, alias in enumerate(aliases))),
        None if boost is None else float(boost),
    )


def _name(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise BiasingUpdateError(f"{where}: expected a string, got {_show(value)}")
    name = " ".join(value.split())
    if not name:
        raise BiasingUpdateError(f"{where}: a name must not be empty")
    if len(name) > MAX_NAME_CHARS:
        raise BiasingUpdateError(f"{where}: longer than {MAX_NAME_CHARS} characters")
    if not to_spoken(name).strip():
        raise BiasingUpdateError(f"{where}: {name!r} has nothing to say (no letters or digits)")
    return name


def _json_type(value: object) -> str:
    return {dict: "an object", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _show(value: object) -> str:
    text = (
        json.dumps(value, ensure_ascii=False)
        if isinstance(value, str | int | float | bool | type(None))
        else _json_type(value)
    )
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------------- names → graph


@dataclass(frozen=True)
class BiasingOptions:
    """How names become a graph (``[biasing]`` in the config)."""

    boost_per_token: float = 1.5
    max_boost_per_word: float = 4.5
    tokenizations: int = 4
    sound_alikes: bool = True
    activation_prefixes: tuple[str, ...] = ()
    cancel_failed: bool = True  # False only for the ablation

    @classmethod
    def from_config(cls, config: BiasingConfig) -> BiasingOptions:
        return cls(
            boost_per_token=config.boost_per_token,
            max_boost_per_word=config.max_boost_per_word,
            tokenizations=config.tokenizations,
            sound_alikes=config.sound_alikes,
            activation_prefixes=tuple(
                p for p in (" ".join(p.split()) for p in config.activation_prefixes) if p
            ),
        )


def biasing_phrases(
    names: NamesConfig, options: BiasingOptions = BiasingOptions(), speller: Speller | None = None
) -> list[BiasPhrase]:
    """Every spelling to boost, each labelled with the name it stands for (see the module doc).

    A sound-alike that is another configured name's spelling is left out: it would turn that
    name into this one.
    """
    spellings: list[tuple[str, str, float | None]] = []  # (spoken text, label, boost)
    own = {to_spoken(entry.name) for kind in NAME_KINDS for entry in names.of(kind)}
    first_names = _first_names(names.contacts, own)
    to_spell = [entry.name for kind in NAME_KINDS for entry in names.of(kind)] + [f for f, _ in first_names]
    alikes = speller(to_spell) if speller is not None and options.sound_alikes else {}

    def add(name: str, label: str, boost: float | None, aliases: Sequence[str] = ()) -> None:
        spellings.append((to_spoken(name), label, boost))
        spellings.extend((to_spoken(alias), label, boost) for alias in aliases)
        spellings.extend((alike, label, boost) for alike in alikes.get(name, ()) if alike not in own)

    for kind in NAME_KINDS:
        for entry in names.of(kind):
            add(entry.name, entry.name, entry.boost, entry.aliases)
    for first, entry in first_names:
        add(first, first, entry.boost)
    unique = list(dict.fromkeys(spellings))
    prefixes: Sequence[str | None] = options.activation_prefixes or (None,)
    return [
        BiasPhrase(text, label, boost, prefix) for text, label, boost in unique for prefix in prefixes if text
    ]


def _first_names(contacts: Sequence[NameEntry], own: set[str]) -> list[tuple[str, NameEntry]]:
    """``(first name, contact)`` for contacts of several words whose first word no other contact
    starts with and that is not a configured name itself."""
    firsts: dict[str, list[NameEntry]] = {}
    for entry in contacts:
        words = entry.name.split()
        if len(words) > 1:
            firsts.setdefault(to_spoken(words[0]), []).append(entry)
    singles = {to_spoken(entry.name) for entry in contacts if len(entry.name.split()) == 1}
    return [
        (entries[0].name.split()[0], entries[0])
        for first, entries in firsts.items()
        if len(entries) == 1 and first not in singles and first not in own
    ]


@dataclass(frozen=True)
class BiasingGraph:
    """The graph the search uses, with the phrases it was built from (for inspection and logs)."""

    graph: ContextGraph
    phrases: tuple[BiasPhrase, ...]


def build_biasing_graph(
    names: NamesConfig,
    tokenizer: Tokenizer,
    options: BiasingOptions = BiasingOptions(),
    speller: Speller | None = None,
) -> BiasingGraph | None:
    """Names → graph (None when there is nothing to boost). Pure, given a pure ``speller``.

    A spelling the recognizer's pieces cannot write (it could never match) is left out, and said.
    """
    phrases = []
    for phrase in biasing_phrases(names, options, speller):
        if tokenizer.tokenizations(phrase.text, 1):
            phrases.append(phrase)
        else:
            log.warning(
                "spelling left out: the recognizer cannot write it", name=phrase.label, text=phrase.text
            )
    if not phrases:
        return None
    graph = ContextGraph.from_phrases(
        phrases,
        tokenizer,
        boost_per_token=options.boost_per_token,
        max_boost_per_word=options.max_boost_per_word,
        tokenizations=options.tokenizations,
        cancel_failed=options.cancel_failed,
    )
    return BiasingGraph(graph, tuple(phrases))


# --------------------------------------------------------------------------- live updates


@dataclass(frozen=True)
class BiasingVocabulary:
    """The names in force and the graph built from them; updates make a new one."""

    names: NamesConfig
    tokenizer: Tokenizer = field(repr=False, compare=False)
    options: BiasingOptions = BiasingOptions()
    speller: Speller | None = field(default=None, repr=False, compare=False)
    built: BiasingGraph | None = field(default=None, repr=False, compare=False)

    @classmethod
    def build(
        cls,
        names: NamesConfig,
        tokenizer: Tokenizer,
        options: BiasingOptions = BiasingOptions(),
        speller: Speller | None = None,
    ) -> BiasingVocabulary:
        return cls(
            names, tokenizer, options, speller, build_biasing_graph(names, tokenizer, options, speller)
        )

    @classmethod
    def from_config(cls, config: BiasingConfig, tokenizer: Tokenizer) -> BiasingVocabulary:
        """The daemon's start: names, options and the sound-alike speller from ``[biasing]``."""
        options = BiasingOptions.from_config(config)
        speller = default_speller(config.pronunciation_cache) if options.sound_alikes else None
        return cls.build(NamesConfig.from_config(config), tokenizer, options, speller)

    @property
    def graph(self) -> ContextGraph | None:
        """What ``StreamingRecognizer.set_biasing`` takes."""
        return self.built.graph if self.built is not None else None

    def with_names(self, names: NamesConfig) -> BiasingVocabulary:
        return BiasingVocabulary.build(names, self.tokenizer, self.options, self.speller)

    def graph_for(
        self,
        names: Sequence[str | NameEntry] = (),
        *,
        contacts: Sequence[str | NameEntry] = (),
        devices: Sequence[str | NameEntry] = (),
        areas: Sequence[str | NameEntry] = (),
    ) -> ContextGraph | None:
        """Names → graph, with this vocabulary's options and speller: the ``BiasingBuilder`` the
        pipeline takes (a flat list), or the lists by kind (then contacts get their first names).
        A name this vocabulary knows takes the aliases and boost it leaves out from the known
        entry (so a bare received "Siobhan" keeps the configured ones, and a received boost wins),
        and in the flat list its kind; other flat names are plain phrases. Raises ``ValueError``
        (:class:`BiasingUpdateError`) on a bad name."""
        known: dict[str, tuple[NameKind, NameEntry | None]] = {
            to_spoken(entry.name): (kind, entry) for kind in NAME_KINDS for entry in self.names.of(kind)
        }
        grouped: dict[NameKind, list[NameEntry]] = {kind: [] for kind in NAME_KINDS}
        given: tuple[tuple[NameKind | None, Sequence[str | NameEntry]], ...] = (
            (None, names),
            ("contacts", contacts),
            ("devices", devices),
            ("areas", areas),
        )
        for kind, values in given:
            for entry in parse_names(list(values), kind or "names"):
                known_kind, configured = known.get(to_spoken(entry.name), ("phrases", None))
                grouped[kind or known_kind].append(_completed(entry, configured))
        config = NamesConfig(*(tuple(grouped[kind]) for kind in NAME_KINDS))
        built = build_biasing_graph(config, self.tokenizer, self.options, self.speller)
        return built.graph if built is not None else None


def _completed(entry: NameEntry, configured: NameEntry | None) -> NameEntry:
    """``entry`` with the aliases and boost it leaves out taken from ``configured`` (same name)."""
    if configured is None:
        return entry
    return NameEntry(
        entry.name,
        entry.aliases or configured.aliases,
        configured.boost if entry.boost is None else entry.boost,
    )


class GraphFor(Protocol):
    """:meth:`BiasingVocabulary.graph_for`: names (flat, or by kind) → graph."""

    def __call__(
        self,
        names: Sequence[str | NameEntry] = (),
        *,
        contacts: Sequence[str | NameEntry] = (),
        devices: Sequence[str | NameEntry] = (),
        areas: Sequence[str | NameEntry] = (),
    ) -> ContextGraph | None: ...


def graph_builder(config: BiasingConfig, tokenizer: Tokenizer) -> GraphFor:
    """For the daemon: names → graph per ``[biasing]`` (options, aliases, boosts, kinds, sound-alikes
    with the on-disk pronunciation cache). Raises ``ValueError`` on a bad name."""
    options = BiasingOptions.from_config(config)
    speller = default_speller(config.pronunciation_cache) if options.sound_alikes else None
    # Not built here: the pipeline builds the graph for the names it holds.
    return BiasingVocabulary(NamesConfig.from_config(config), tokenizer, options, speller).graph_for


def apply_names_update(
    current: BiasingVocabulary,
    kind: str,
    payload: bytes | str | Sequence[object],
    *,
    mode: Literal["replace", "add"] = "replace",
) -> BiasingVocabulary:
    """``current`` with the ``kind`` list replaced by (or extended with) ``payload``, graph rebuilt.

    Raises :class:`BiasingUpdateError` (and changes nothing) for an unknown kind, a malformed
    list, or names the graph cannot hold; the caller keeps ``current``.
    """
    if kind not in NAME_KINDS:
        raise BiasingUpdateError(f"unknown kind of names {kind!r}; expected one of {', '.join(NAME_KINDS)}")
    entries = parse_names(payload, kind)
    typed: NameKind = kind  # checked just above
    names = current.names.added(typed, entries) if mode == "add" else current.names.replaced(typed, entries)
    return current.with_names(names)


@functools.cache
def _note_no_espeak() -> None:
    log.info("espeak-ng not installed: names get no sound-alike spellings (only those cached)")


def default_speller(cache_path: Path | None) -> Speller:
    """Sound-alikes from espeak-ng, cached at ``cache_path`` ('~' expanded)."""
    pronouncer = Pronouncer(cache_path.expanduser() if cache_path is not None else None)
    if not pronouncer.available:
        _note_no_espeak()
    return SoundAlikes(pronouncer, bundled_common_words()).of_many
