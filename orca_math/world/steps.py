"""The step kinds of the world: for each, its arithmetic, its numbers, and its phrasings.

A kind reads one running quantity (a :class:`State` and its value ``x``) and produces the next.
Sources start a program (``Mia has 12 apples``, ``Leo buys 3 pies at $4 each``); the others
transform: totals, differences, twice/half as many, price x quantity, change from a bill,
sharing equally, rates x days, percent off, ... Every kind has

- ``draw``: numbers and words for it, chosen so every result is a whole number (divisions exact);
- ``value`` and ``expr``: its result computed twice, as Python arithmetic and as a formula
  string evaluated separately (``evaluate_expression``), so an answer is never trusted unchecked;
- ``sentences``/``questions``/``solution``: several phrasings of the problem sentence and the
  question, and the solution line(s) showing the arithmetic as ``a op b = c``.

Templates are ``str.format`` strings over the fields built in ``render.py``; a sentence starting
with ``@`` uses pronouns (``her``) and is only picked when the owner is a person or a group.
"""

from __future__ import annotations

import ast
import operator
import random
from dataclasses import dataclass, replace
from fractions import Fraction

from orca_math.world.program import Program, ProgramError, State, Step
from orca_math.world.vocab import BILLS, GIVERS, GROUPS, ITEMS, NAMES, PEOPLE, PURCHASES, STORES

THEY = ("they", "them", "their")
_TIMES = {2: "twice", 3: "three times", 4: "four times", 5: "five times"}
_FRACTION = {2: "half", 3: "a third", 4: "a quarter"}


@dataclass(frozen=True)
class DrawContext:
    """What a step's draw must know about the program it joins."""

    used: frozenset[str]  # every word already in the program (names, items, ...)
    max_value: int  # no quantity may exceed this
    prev_kind: str | None  # kind of the step before (None for a source)
    store: str | None = None  # the store the problem already named, so a discount comes from it


def singular(plural: str) -> str:
    """'boxes' -> 'box', 'baskets' -> 'basket' (enough for the container nouns in vocab.py)."""
    return plural[:-2] if plural.endswith("xes") else plural[:-1]


def new_name(rng: random.Random, used: frozenset[str]) -> str | None:
    """A person not yet in the problem (None when every name is taken)."""
    free = [n for n in NAMES if n not in used]
    return rng.choice(free) if free else None


def new_item(rng: random.Random, used: frozenset[str]) -> str | None:
    """An item key not yet in the problem (None when every item is taken)."""
    free = [i for i in ITEMS if i not in used]
    return rng.choice(free) if free else None


def _person_state(unit: str, role: str, name: str, item: str = "") -> State:
    it = ITEMS.get(item)
    return State(unit, role, name, pron=PEOPLE[name], item=item, items=it.many if it else "",
                 container=it.container if it else "")


def _divisors(x: int, lo: int, hi: int, min_quotient: int = 2) -> list[int]:
    return [k for k in range(lo, hi + 1) if x % k == 0 and x // k >= min_quotient]


class StepKind:
    """Base of every kind. Subclasses set the class attributes and override what differs."""

    name: str = ""
    source: bool = False  # starts a program: takes no running quantity
    ops: int = 1  # arithmetic steps it adds (0 for a stated amount)
    scaled: tuple[str, ...] = ()  # givens that grow with "larger numbers" (the result scales with them)
    sentences: tuple[str, ...] = ()
    questions: tuple[str, ...] = ()
    solution: tuple[str, ...] = ()  # one template per solution line
    silent_when_last: bool = False  # its question says everything when it is the last step
    weight: float = 1.0  # how often it is picked among the kinds that fit

    def applies(self, state: State | None) -> bool:
        """Whether this kind can follow ``state`` (None: the program is empty)."""
        return state is None if self.source else state is not None and self._applies(state)

    def _applies(self, state: State) -> bool:
        return False

    def draw(self, rng: random.Random, state: State | None, x: int | None, ctx: DrawContext) -> tuple[dict, dict] | None:
        """(givens, words) for one instance, or None when no numbers fit ``x``."""
        raise NotImplementedError

    def value(self, g: dict[str, int], xs: list[Fraction]) -> Fraction:
        """The result from the givens ``g`` and the values so far ``xs`` (last = running quantity)."""
        raise NotImplementedError

    def expr(self, g: dict[str, int], es: list[str]) -> str:
        """The result as a formula over the formulas so far ``es``."""
        raise NotImplementedError

    def next_state(self, step: Step, state: State | None) -> State:
        """The running quantity after this step."""
        raise NotImplementedError

    def extra_fields(self, step: Step, state: State, prev: Step | None) -> dict[str, object]:
        """Derived words for the templates (``twice``, ``a $20 bill``, ...)."""
        return {}

    def partial(self, g: dict[str, int], x: int) -> dict[str, int]:
        """Numbers of a two-line solution computed on the way (the discount of a percent off)."""
        return {}

    def sentence_templates(self, state: State | None) -> tuple[str, ...]:
        """The problem-sentence phrasings that fit ``state`` (the state before this step)."""
        return self.sentences

    def question_templates(self, state: State | None) -> tuple[str, ...]:
        """The question phrasings that fit ``state``."""
        return self.questions


KINDS: dict[str, StepKind] = {}


def kind(cls: type[StepKind]) -> type[StepKind]:
    """Register a kind under its name."""
    KINDS[cls.name] = cls()
    return cls


# ----------------------------------------------------------------------------------- sources


@kind
class Have(StepKind):
    name, source, ops, scaled = "have", True, 0, ("n",)
    sentences = ("{Owner} has {n} {items}.", "{Owner} owns {n} {items}.", "{Owner} starts with {n} {items}.")
    questions = ("How many {items} does {owner} have?",)

    def draw(self, rng, state, x, ctx):
        return {"n": rng.randint(4, 40)}, {"owner": new_name(rng, ctx.used), "item": new_item(rng, ctx.used)}

    def value(self, g, xs):
        return Fraction(g["n"])

    def expr(self, g, es):
        return str(g["n"])

    def next_state(self, step, state):
        return _person_state("count", "has", step.words["owner"], step.words["item"])


@kind
class Groups(StepKind):
    name, source, scaled = "groups", True, ("n",)
    sentences = (
        "{Owner} has {g} {containers} of {items} with {n} {items} in each {container}.",
        "{Owner} buys {g} {containers} of {items}. Each {container} holds {n} {items}.",
        "There are {n} {items} in each of {Owner}'s {g} {containers}.",
    )
    questions = ("How many {items} does {owner} have in total?", "How many {items} does {owner} have altogether?")
    solution = ("{Owner} has {g} * {n} = {y} {items}.",)

    def draw(self, rng, state, x, ctx):
        return {"g": rng.randint(2, 9), "n": rng.randint(2, 12)}, {"owner": new_name(rng, ctx.used), "item": new_item(rng, ctx.used)}

    def value(self, g, xs):
        return Fraction(g["g"] * g["n"])

    def expr(self, g, es):
        return f"{g['g']} * {g['n']}"

    def next_state(self, step, state):
        s = _person_state("count", "has", step.words["owner"], step.words["item"])
        return replace(s, container="")  # already in containers: packing them again reads badly

    def extra_fields(self, step, state, prev):
        it = ITEMS[step.words["item"]]
        return {"containers": it.container, "container": singular(it.container)}


@kind
class RateDays(StepKind):
    name, source, scaled = "rate_days", True, ("r",)
    sentences = (
        "{Owner} {gathers} {r} {items} every day for {d} days.",
        "Every day for {d} days, {Owner} {gathers} {r} {items}.",
        "{Owner} {gathers} {r} {items} a day, {d} days in a row.",
    )
    questions = ("How many {items} does {owner} {gather} in total?", "How many {items} does {owner} {gather} over the {d} days?")
    solution = ("{Owner} {gathers} {r} * {d} = {y} {items}.",)

    def draw(self, rng, state, x, ctx):
        return {"r": rng.randint(2, 15), "d": rng.randint(2, 9)}, {"owner": new_name(rng, ctx.used), "item": new_item(rng, ctx.used)}

    def value(self, g, xs):
        return Fraction(g["r"] * g["d"])

    def expr(self, g, es):
        return f"{g['r']} * {g['d']}"

    def next_state(self, step, state):
        return _person_state("count", "has", step.words["owner"], step.words["item"])

    def extra_fields(self, step, state, prev):
        gathers, gather = ITEMS[step.words["item"]].gather
        return {"gathers": gathers, "gather": gather}


@kind
class Wallet(StepKind):
    name, source, ops, scaled = "wallet", True, 0, ("n",)
    sentences = ("{Owner} has ${n}.", "{Owner} has ${n} in {poss} wallet.", "{Owner} has saved ${n}.")
    questions = ("How much money does {owner} have?",)

    def draw(self, rng, state, x, ctx):
        return {"n": rng.randint(10, 120)}, {"owner": new_name(rng, ctx.used)}

    def value(self, g, xs):
        return Fraction(g["n"])

    def expr(self, g, es):
        return str(g["n"])

    def next_state(self, step, state):
        return _person_state("money", "funds", step.words["owner"])


@kind
class EarnRate(StepKind):
    name, source, scaled = "earn_rate", True, ("r",)
    sentences = (
        "{Owner} earns ${r} an hour and works {h} hours.",
        "{Owner} works {h} hours at ${r} per hour.",
        "{Owner} gets paid ${r} for each hour of work and works for {h} hours.",
    )
    questions = ("How much money does {owner} earn?", "How many dollars does {owner} make?")
    solution = ("{Owner} earns {r} * {h} = {y} dollars.",)

    def draw(self, rng, state, x, ctx):
        return {"r": rng.randint(5, 25), "h": rng.randint(2, 10)}, {"owner": new_name(rng, ctx.used)}

    def value(self, g, xs):
        return Fraction(g["r"] * g["h"])

    def expr(self, g, es):
        return f"{g['r']} * {g['h']}"

    def next_state(self, step, state):
        return _person_state("money", "funds", step.words["owner"])


@kind
class Buy(StepKind):
    name, source, scaled = "buy", True, ("p",)
    sentences = (
        "{Owner} buys {n} {items} that cost ${p} each.",
        "{Owner} buys {n} {items} at ${p} per {item}.",
        "At the {store}, {items} cost ${p} each, and {Owner} buys {n} of them.",
    )
    questions = ("How much does {owner} spend?", "How much does {owner} pay for the {items}?")
    solution = ("{Owner} pays {n} * {p} = {y} dollars.",)

    def draw(self, rng, state, x, ctx):
        words = {"owner": new_name(rng, ctx.used), "item": new_item(rng, ctx.used), "store": ctx.store or rng.choice(STORES)}
        return {"n": rng.randint(2, 9), "p": rng.randint(2, 20)}, words

    def value(self, g, xs):
        return Fraction(g["n"] * g["p"])

    def expr(self, g, es):
        return f"{g['n']} * {g['p']}"

    def next_state(self, step, state):
        return _person_state("money", "cost", step.words["owner"], step.words["item"])


# ------------------------------------------------------------------------- counts -> counts


@kind
class Gain(StepKind):
    name, scaled = "gain", ("b",)
    sentences = (
        "{Who} then get{s} {b} more {items}.",
        "{Who} find{s} {b} more {items}.",
        "After that, {who} buy{s} {b} more {items}.",
        "@{Poss} {giver} gives {obj} {b} more {items}.",
    )
    questions = ("How many {items} {does} {owner} have now?", "How many {items} {does} {owner} have in all?")
    solution = ("{Owner} {has} {x} + {b} = {y} {items} now.",)

    def _applies(self, state):
        return state.unit == "count"

    def draw(self, rng, state, x, ctx):
        return {"b": rng.randint(2, 30)}, {"giver": rng.choice(GIVERS)}

    def value(self, g, xs):
        return xs[-1] + g["b"]

    def expr(self, g, es):
        return f"({es[-1]} + {g['b']})"

    def next_state(self, step, state):
        return replace(state, partner=None)


@kind
class Lose(StepKind):
    name, scaled = "lose", ("b",)
    sentences = (
        "{Who} give{s} {b} of them to {other}.",
        "{Who} lose{s} {b} {items}.",
        "{Who} use{s} {b} {items} for a school project.",
        "Then {who} give{s} away {b} {items}.",
    )
    questions = ("How many {items} {does} {owner} have left?", "How many {items} {does} {owner} have now?")
    solution = ("{Owner} {has} {x} - {b} = {y} {items} left.",)

    def _applies(self, state):
        return state.unit == "count"

    def draw(self, rng, state, x, ctx):
        other = new_name(rng, ctx.used)
        if x < 4 or other is None:
            return None
        return {"b": rng.randint(2, min(30, x - 2))}, {"other": other}

    def value(self, g, xs):
        return xs[-1] - g["b"]

    def expr(self, g, es):
        return f"({es[-1]} - {g['b']})"

    def next_state(self, step, state):
        return replace(state, partner=None)


class Comparison(StepKind):
    """Someone new has k times / 1/k / b more / b fewer than the owner (counts or money)."""

    weight = 0.5  # four of them: together as likely as two plain kinds
    count_sentences: tuple[str, ...] = ()
    money_sentences: tuple[str, ...] = ()
    op = ""

    # Both units share phrasing indices; render picks the list by the state's unit.
    questions = ("How many {items} does {other} have?",)
    money_questions = ("How much money does {other} have?",)

    def _applies(self, state):
        person_or_each = (state.pron is not None and not state.plural) or state.each
        return person_or_each and (state.unit == "count" or state.role == "funds")

    def _other(self, rng, ctx):
        return new_name(rng, ctx.used)

    def sentence_templates(self, state):
        return self.count_sentences if state.unit == "count" else self.money_sentences

    def question_templates(self, state):
        return self.questions if state.unit == "count" else self.money_questions

    def next_state(self, step, state):
        other = step.words["other"]
        partner = state.owner if state.pron is not None else None  # "each friend and Ava" reads badly
        return replace(state, owner=other, plural=False, pron=PEOPLE[other], partner=partner, each=False)

    def extra_fields(self, step, state, prev):
        # "as many as Mia has now" once Mia's amount changed in the story.
        changed = prev is not None and prev.kind in ("gain", "lose", "spend", "earn_more")
        has = "have" if state.plural else "has"
        return {"has_now": f" {has} now" if changed else "", "now": " now" if changed else ""}


@kind
class Times(Comparison):
    name = "times"
    count_sentences = (
        "{Other} has {twice} as many {items} as {owner}{has_now}.",
        "{Other} has {k} times as many {items} as {owner}{has_now}.",
        "{Other} has {k} times the number of {items} that {owner} {has}{now}.",
    )
    money_sentences = (
        "{Other} has {twice} as much money as {owner}{has_now}.",
        "{Other} has {k} times as much money as {owner}{has_now}.",
        "{Other} has {k} times the amount of money that {owner} {has}{now}.",
    )
    solution = ("{Other} has {k} * {x} = {y} {units}.",)

    def draw(self, rng, state, x, ctx):
        other = self._other(rng, ctx)
        ks = [k for k in range(2, 6) if k * x <= ctx.max_value]
        return ({"k": rng.choice(ks)}, {"other": other}) if ks and other else None

    def value(self, g, xs):
        return g["k"] * xs[-1]

    def expr(self, g, es):
        return f"({g['k']} * {es[-1]})"

    def extra_fields(self, step, state, prev):
        return {**super().extra_fields(step, state, prev), "twice": _TIMES[step.givens["k"]]}


@kind
class FractionOf(Comparison):
    name = "fraction"
    count_sentences = (
        "{Other} has {frac} as many {items} as {owner}{has_now}.",
        "{Other} has {frac} the number of {items} that {owner} {has}{now}.",
    )
    money_sentences = (
        "{Other} has {frac} as much money as {owner}{has_now}.",
        "{Other} has {frac} the amount of money that {owner} {has}{now}.",
    )
    solution = ("{Other} has {x} / {k} = {y} {units}.",)

    def draw(self, rng, state, x, ctx):
        other = self._other(rng, ctx)
        ks = _divisors(x, 2, 4)
        return ({"k": rng.choice(ks)}, {"other": other}) if ks and other else None

    def value(self, g, xs):
        return xs[-1] / g["k"]

    def expr(self, g, es):
        return f"({es[-1]} / {g['k']})"

    def extra_fields(self, step, state, prev):
        return {**super().extra_fields(step, state, prev), "frac": _FRACTION[step.givens["k"]]}


@kind
class MoreThan(Comparison):
    name, scaled = "more_than", ("b",)
    count_sentences = (
        "{Other} has {b} more {items} than {owner}{has_now}.",
        "{Other} has {b} {items} more than {owner}{has_now}.",
    )
    money_sentences = (
        "{Other} has ${b} more than {owner}{has_now}.",
        "{Other} has {b} dollars more than {owner}{has_now}.",
    )
    solution = ("{Other} has {x} + {b} = {y} {units}.",)

    def draw(self, rng, state, x, ctx):
        other = self._other(rng, ctx)
        return ({"b": rng.randint(2, 25)}, {"other": other}) if other else None

    def value(self, g, xs):
        return xs[-1] + g["b"]

    def expr(self, g, es):
        return f"({es[-1]} + {g['b']})"


@kind
class FewerThan(Comparison):
    name, scaled = "fewer_than", ("b",)
    count_sentences = (
        "{Other} has {b} fewer {items} than {owner}{has_now}.",
        "{Other} has {b} {items} fewer than {owner}{has_now}.",
    )
    money_sentences = (
        "{Other} has ${b} less than {owner}{has_now}.",
        "{Other} has {b} dollars less than {owner}{has_now}.",
    )
    solution = ("{Other} has {x} - {b} = {y} {units}.",)

    def draw(self, rng, state, x, ctx):
        other = self._other(rng, ctx)
        return ({"b": rng.randint(2, min(25, x - 2))}, {"other": other}) if other and x >= 4 else None

    def value(self, g, xs):
        return xs[-1] - g["b"]

    def expr(self, g, es):
        return f"({es[-1]} - {g['b']})"


@kind
class Together(StepKind):
    """The owner and the person they were just compared with, put together."""

    name, silent_when_last = "together", True
    count_sentences = (
        "{Partner} and {owner} put all their {items} together.",
        "{Partner} and {owner} combine their {items}.",
    )
    money_sentences = ("{Partner} and {owner} put their money together.", "{Partner} and {owner} pool their money.")
    questions = ("How many {items} do {partner} and {owner} have together?", "How many {items} do {partner} and {owner} have in total?")
    money_questions = ("How much money do {partner} and {owner} have together?", "How much money do {partner} and {owner} have in total?")
    solution = ("Together they have {x2} + {x} = {y} {units}.",)

    def _applies(self, state):
        return state.partner is not None and (state.unit == "count" or state.role == "funds")

    def sentence_templates(self, state):
        return self.count_sentences if state.unit == "count" else self.money_sentences

    def question_templates(self, state):
        return self.questions if state.unit == "count" else self.money_questions

    def draw(self, rng, state, x, ctx):
        return {}, {}

    def value(self, g, xs):
        return xs[-2] + xs[-1]

    def expr(self, g, es):
        return f"({es[-2]} + {es[-1]})"

    def next_state(self, step, state):
        return replace(state, owner=f"{state.partner} and {state.owner}", plural=True, pron=THEY, partner=None)


@kind
class Share(StepKind):
    name = "share"
    sentences = (
        "{Who} share{s} them equally among {k} {groups}.",
        "{Who} divide{s} the {items} equally among {k} {groups}.",
        "@{Who} give{s} all the {items} to {poss} {k} {groups}, the same number to each.",
    )
    questions = ("How many {items} does each {group} get?", "How many {items} does each of the {groups} receive?")
    solution = ("Each {group} gets {x} / {k} = {y} {items}.",)

    def _applies(self, state):
        return state.unit == "count" and not state.each

    def draw(self, rng, state, x, ctx):
        ks = _divisors(x, 2, 8)
        group, groups = rng.choice(GROUPS)
        return ({"k": rng.choice(ks)}, {"group": group, "groups": groups}) if ks else None

    def value(self, g, xs):
        return xs[-1] / g["k"]

    def expr(self, g, es):
        return f"({es[-1]} / {g['k']})"

    def next_state(self, step, state):
        return replace(state, owner=f"each {step.words['group']}", plural=False, pron=None, partner=None, each=True)


@kind
class Pack(StepKind):
    name = "pack"
    sentences = (
        "{Who} put{s} the {items} into {containers} of {k}.",
        "{Who} pack{s} {k} {items} in each {container}.",
        "{Who} fill{s} {containers} with {k} {items} each.",
    )
    questions = ("How many {containers} {does} {owner} fill?", "How many {containers} {does} {owner} need?")
    solution = ("{Owner} fill{s} {x} / {k} = {y} {containers}.",)

    def _applies(self, state):
        return state.unit == "count" and bool(state.container)

    def draw(self, rng, state, x, ctx):
        ks = _divisors(x, 2, 12)
        return ({"k": rng.choice(ks)}, {}) if ks else None

    def value(self, g, xs):
        return xs[-1] / g["k"]

    def expr(self, g, es):
        return f"({es[-1]} / {g['k']})"

    def next_state(self, step, state):
        return replace(state, item=singular(state.container), items=state.container, container="", partner=None)


# -------------------------------------------------------------------------- counts -> money


@kind
class Sell(StepKind):
    name = "sell"
    sentences = (
        "{Who} sell{s} each {item} for ${p}.",
        "{Who} sell{s} all of them at ${p} per {item}.",
        "Each {item} sells for ${p}, and {who} sell{s} all of them.",
    )
    questions = ("How much money {does} {owner} make?", "How much money {does} {owner} earn from selling them?")
    solution = ("{Owner} make{s} {x} * {p} = {y} dollars.",)

    def _applies(self, state):
        return state.unit == "count"

    def draw(self, rng, state, x, ctx):
        ps = [p for p in range(2, 13) if p * x <= ctx.max_value]
        return ({"p": rng.choice(ps)}, {}) if ps else None

    def value(self, g, xs):
        return xs[-1] * g["p"]

    def expr(self, g, es):
        return f"({es[-1]} * {g['p']})"

    def next_state(self, step, state):
        return replace(state, unit="money", role="funds", item="", items="", container="", partner=None)


# --------------------------------------------------------------------------- money owned


@kind
class Spend(StepKind):
    name, scaled = "spend", ("b",)
    sentences = (
        "{Who} spend{s} ${b} on {purchase}.",
        "{Who} buy{s} {purchase} for ${b}.",
        "Then {who} pay{s} ${b} for {purchase}.",
    )
    questions = ("How much money {does} {owner} have left?", "How many dollars {does} {owner} have left?")
    solution = ("{Owner} {has} {x} - {b} = {y} dollars left.",)

    def _applies(self, state):
        return state.role == "funds"

    def draw(self, rng, state, x, ctx):
        return ({"b": rng.randint(2, min(60, x - 2))}, {"purchase": rng.choice(PURCHASES)}) if x >= 4 else None

    def value(self, g, xs):
        return xs[-1] - g["b"]

    def expr(self, g, es):
        return f"({es[-1]} - {g['b']})"

    def next_state(self, step, state):
        return replace(state, partner=None)


@kind
class EarnMore(StepKind):
    name, scaled = "earn_more", ("b",)
    sentences = ("{Who} earn{s} another ${b}.", "{Who} find{s} ${b} more.", "@{Poss} {giver} gives {obj} ${b}.")
    questions = ("How much money {does} {owner} have now?", "How much money {does} {owner} have in all?")
    solution = ("{Owner} {has} {x} + {b} = {y} dollars now.",)

    def _applies(self, state):
        return state.role == "funds"

    def draw(self, rng, state, x, ctx):
        return {"b": rng.randint(5, 50)}, {"giver": rng.choice(GIVERS)}

    def value(self, g, xs):
        return xs[-1] + g["b"]

    def expr(self, g, es):
        return f"({es[-1]} + {g['b']})"

    def next_state(self, step, state):
        return replace(state, partner=None)


@kind
class ShareMoney(StepKind):
    name = "share_money"
    sentences = ("{Who} split{s} the money equally among {k} {groups}.", "{Who} divide{s} the money equally between {k} {groups}.")
    questions = ("How much money does each {group} get?", "How many dollars does each {group} receive?")
    solution = ("Each {group} gets {x} / {k} = {y} dollars.",)

    def _applies(self, state):
        return state.role == "funds" and not state.each

    def draw(self, rng, state, x, ctx):
        ks = _divisors(x, 2, 6)
        group, groups = rng.choice(GROUPS)
        return ({"k": rng.choice(ks)}, {"group": group, "groups": groups}) if ks else None

    def value(self, g, xs):
        return xs[-1] / g["k"]

    def expr(self, g, es):
        return f"({es[-1]} / {g['k']})"

    def next_state(self, step, state):
        return replace(state, owner=f"each {step.words['group']}", plural=False, pron=None, partner=None, each=True)


@kind
class BuyWith(StepKind):
    name = "buy_with"
    sentences = (
        "{Who} spend{s} all the money on {new_items} that cost ${p} each.",
        "{Who} use{s} all the money to buy {new_items} at ${p} each.",
    )
    questions = ("How many {new_items} {does} {owner} buy?", "How many {new_items} can {owner} buy?")
    solution = ("{Owner} buy{s} {x} / {p} = {y} {new_items}.",)

    def _applies(self, state):
        return state.role == "funds"

    def draw(self, rng, state, x, ctx):
        ps = _divisors(x, 2, 25)
        item = new_item(rng, ctx.used)
        return ({"p": rng.choice(ps)}, {"new_item": item}) if ps and item else None

    def value(self, g, xs):
        return xs[-1] / g["p"]

    def expr(self, g, es):
        return f"({es[-1]} / {g['p']})"

    def next_state(self, step, state):
        it = ITEMS[step.words["new_item"]]
        return replace(state, unit="count", role="has", item=it.one, items=it.many, container=it.container, partner=None)

    def extra_fields(self, step, state, prev):
        return {"new_items": ITEMS[step.words["new_item"]].many}


# ---------------------------------------------------------------------------- money to pay


@kind
class PercentOff(StepKind):
    name = "percent_off"
    sentences = (
        "@The {store} gives {obj} a {p}% discount.",
        "{Who} get{s} {p}% off the price.",
        "There is a {p}% discount on the total.",
    )
    questions = ("How much {does} {owner} pay after the discount?", "How much {does} {owner} pay in the end?")
    solution = ("The discount is {x} * {p} / 100 = {part} dollars.", "So {owner} pay{s} {x} - {part} = {y} dollars.")

    def _applies(self, state):
        return state.role == "cost"

    def draw(self, rng, state, x, ctx):
        ps = [p for p in (5, 10, 15, 20, 25, 30, 40, 50, 75) if x * p % 100 == 0 and x * p // 100 >= 2]
        return ({"p": rng.choice(ps)}, {"store": ctx.store or rng.choice(STORES)}) if ps else None

    def value(self, g, xs):
        return xs[-1] - xs[-1] * g["p"] / 100

    def expr(self, g, es):
        return f"({es[-1]} - {es[-1]} * {g['p']} / 100)"

    def next_state(self, step, state):
        return state

    def partial(self, g, x):
        return {"part": x * g["p"] // 100}


@kind
class Tip(StepKind):
    name = "tip"
    sentences = ("There is a {p}% {extra} on top of that.", "{Who} also pay{s} a {p}% {extra}.")
    questions = ("How much {does} {owner} pay in total?", "How much money {does} {owner} pay altogether?")
    solution = ("The {extra} is {x} * {p} / 100 = {part} dollars.", "So {owner} pay{s} {x} + {part} = {y} dollars in total.")

    def _applies(self, state):
        return state.role == "cost"

    def draw(self, rng, state, x, ctx):
        ps = [p for p in (10, 15, 20, 25) if x * p % 100 == 0 and 2 <= x * p // 100 and x + x * p // 100 <= ctx.max_value]
        return ({"p": rng.choice(ps)}, {"extra": rng.choice(("tip", "sales tax"))}) if ps else None

    def value(self, g, xs):
        return xs[-1] + xs[-1] * g["p"] / 100

    def expr(self, g, es):
        return f"({es[-1]} + {es[-1]} * {g['p']} / 100)"

    def partial(self, g, x):
        return {"part": x * g["p"] // 100}

    def next_state(self, step, state):
        return state


@kind
class Change(StepKind):
    name, scaled = "change", ("bill",)
    sentences = ("{Who} pay{s} with {bill_text}.", "{Who} give{s} the cashier ${bill}.", "{Who} hand{s} over ${bill}.")
    questions = ("How much change {does} {owner} get?", "How much change {does} {owner} receive?")
    solution = ("{Owner} get{s} {bill} - {x} = {y} dollars in change.",)

    def _applies(self, state):
        return state.role == "cost"

    def draw(self, rng, state, x, ctx):
        bills = [b for b in BILLS if b > x][:2] or [(x // 100 + 1) * 100]
        bills = [b for b in bills if b <= ctx.max_value]
        return ({"bill": rng.choice(bills)}, {}) if bills else None

    def value(self, g, xs):
        return g["bill"] - xs[-1]

    def expr(self, g, es):
        return f"({g['bill']} - {es[-1]})"

    def next_state(self, step, state):
        return replace(state, role="funds", partner=None)

    def extra_fields(self, step, state, prev):
        bill = step.givens["bill"]
        return {"bill_text": f"a ${bill} bill" if bill in BILLS else f"${bill}"}


@kind
class SplitBill(StepKind):
    name = "split_bill"
    sentences = ("{Who} and {companions} split the cost equally.", "{Who} share{s} the cost equally with {companions}.")
    questions = ("How much does each person pay?", "How much does each of them pay?")
    solution = ("Each person pays {x} / {k} = {y} dollars.",)

    def _applies(self, state):
        return state.role == "cost" and state.pron is not None and not state.plural

    def draw(self, rng, state, x, ctx):
        ks = _divisors(x, 2, 6)
        group, groups = rng.choice(GROUPS)
        return ({"k": rng.choice(ks)}, {"group": group, "groups": groups}) if ks else None

    def value(self, g, xs):
        return xs[-1] / g["k"]

    def expr(self, g, es):
        return f"({es[-1]} / {g['k']})"

    def next_state(self, step, state):
        return replace(state, owner="each person", plural=False, pron=None, partner=None, each=True)

    def extra_fields(self, step, state, prev):
        k = step.givens["k"]
        comp = f"a {step.words['group']}" if k == 2 else f"{k - 1} {step.words['groups']}"
        return {"companions": comp}


@kind
class AddItem(StepKind):
    name, scaled = "add_item", ("b",)
    sentences = ("{Who} also buy{s} {purchase} for ${b}.", "{Who} also pay{s} ${b} for {purchase}.")
    questions = ("How much {does} {owner} spend in total?", "How much money {does} {owner} spend altogether?")
    solution = ("{Owner} spend{s} {x} + {b} = {y} dollars in total.",)

    def _applies(self, state):
        return state.role == "cost"

    def draw(self, rng, state, x, ctx):
        return {"b": rng.randint(2, 30)}, {"purchase": rng.choice(PURCHASES)}

    def value(self, g, xs):
        return xs[-1] + g["b"]

    def expr(self, g, es):
        return f"({es[-1]} + {g['b']})"

    def next_state(self, step, state):
        return state


SOURCES = tuple(k for k in KINDS.values() if k.source)


# ------------------------------------------------------------------------- running a program


def _kind(step: Step, index: int) -> StepKind:
    try:
        return KINDS[step.kind]
    except KeyError:
        raise ProgramError(f"step {index}: unknown kind {step.kind!r}") from None


def states(program: Program) -> list[State]:
    """The running quantity's state after each step; ProgramError if a step cannot follow."""
    out: list[State] = []
    state: State | None = None
    for i, step in enumerate(program.steps):
        k = _kind(step, i)
        if not k.applies(state):
            raise ProgramError(f"step {i}: {step.kind!r} cannot follow {state}")
        state = k.next_state(step, state)
        out.append(state)
    return out


def evaluate(program: Program) -> list[int]:
    """The value after each step, as exact integers; ProgramError on a fraction or a negative."""
    xs: list[Fraction] = []
    for i, step in enumerate(program.steps):
        try:
            v = _kind(step, i).value(step.givens, xs)
            v = v if type(v) is Fraction else Fraction(v)
        except (KeyError, IndexError, ZeroDivisionError) as e:
            raise ProgramError(f"step {i} ({step.kind}): cannot evaluate: {e!r}") from e
        if v.denominator != 1 or v < 0:
            raise ProgramError(f"step {i} ({step.kind}): result {v} is not a non-negative whole number")
        xs.append(v)
    return [int(v) for v in xs]


def expression(program: Program) -> str:
    """The answer as one arithmetic formula, built from each kind's ``expr``."""
    es: list[str] = []
    for i, step in enumerate(program.steps):
        try:
            es.append(_kind(step, i).expr(step.givens, es))
        except (KeyError, IndexError) as e:
            raise ProgramError(f"step {i} ({step.kind}): cannot build a formula: {e!r}") from e
    return es[-1]


_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def evaluate_expression(formula: str) -> Fraction:
    """Exact value of a formula of integers, + - * / and parentheses (nothing else is accepted)."""

    def ev(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return Fraction(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](ev(node.left), ev(node.right))
        raise ProgramError(f"not plain arithmetic: {ast.dump(node)[:80]}")

    try:
        return ev(ast.parse(formula, mode="eval"))
    except (SyntaxError, ZeroDivisionError) as e:
        raise ProgramError(f"bad formula {formula[:80]!r}: {e}") from e


def arithmetic_steps(program: Program) -> int:
    """How many arithmetic steps the problem takes (stated amounts do not count)."""
    return sum(KINDS[s.kind].ops for s in program.steps)


# A distractor: (template, smallest number, largest number). ``owner`` is the first person of
# the problem; ``other_items`` are things no step counts, so the sentence never changes the answer.
DISTRACTORS: tuple[tuple[str, int, int], ...] = (
    ("{owner} is {n} years old.", 6, 14),
    ("{owner} also has {n} {other_items}.", 2, 30),
    ("The {store} is {n} blocks from {owner}'s house.", 2, 15),
    ("It takes {owner} {n} minutes to walk to the {store}.", 5, 30),
    ("{owner}'s {giver} is {n} years old.", 30, 80),
)
