"""Aliases: names that stand for one another (DPRK, North Korea, Pyongyang), read as one token."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from worker.tracking.textproc import words


@dataclass(frozen=True)
class AliasTable:
    """Equivalent names mapped onto one canonical token sequence.

    ``[["North Korea", "DPRK", "Pyongyang"]]`` rewrites every variant, the first included, to one
    token named after the first entry ("north_korea"): one token, so that "Islamic State" and
    "United States" do not share a "state". Matching is on normalised tokens, longest first.
    """

    rules: Mapping[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict)
    max_len: int = 0
    firsts: frozenset[str] = frozenset()
    """First tokens of every rule: most tokens start no rule and are passed over at once."""

    @staticmethod
    def build(groups: Iterable[Sequence[str]], base: AliasTable | None = None) -> AliasTable:
        """The rules of ``groups``, on top of ``base``'s. A group that names a variant the base
        knows joins that base group: all its variants map onto the base's canonical token, so a
        storyline's ["DPRK", "North Korea", "N Korea"] extends the generic North Korea group
        instead of competing with it."""
        rules: dict[tuple[str, ...], tuple[str, ...]] = dict(base.rules) if base else {}
        for group in groups:
            keys = [tuple(words(v, trust_case=False)) for v in group]
            keys = [k for k in keys if k]
            if len(keys) < 2:
                continue
            known = [base.rules[k] for k in keys if base and k in base.rules]
            canon = known[0] if known else ("_".join(keys[0]),)
            for k in keys:
                if k != canon:
                    rules[k] = canon
        return AliasTable(
            rules, max((len(k) for k in rules), default=0), frozenset(k[0] for k in rules)
        )

    def firsts_beyond(self, base: AliasTable) -> frozenset[str]:
        """First tokens of the rules this table has and ``base`` has not: a text in which none
        of them can start a rule reads the same under both tables."""
        return frozenset(k[0] for k, canon in self.rules.items() if base.rules.get(k) != canon)

    def apply(self, seq: list[str], tried: set[str] | None = None) -> list[str]:
        """The token sequence (see ``read``) with every variant rewritten; a variant never spans
        a BREAK. ``tried`` (if given) receives the first token of each rewritten span: with the
        tokens returned, these are all the places where any table's rule could have started
        (see ``firsts_beyond``)."""
        firsts = self.firsts
        if not firsts or firsts.isdisjoint(seq):
            return seq
        out: list[str] = []
        done = 0
        n = len(seq)
        for i in [i for i, token in enumerate(seq) if token in firsts]:
            if i < done:
                continue  # inside a span already rewritten
            out.extend(seq[done:i])  # the stretch before a possible rule start, as a slice
            done = i + 1
            for span in range(min(self.max_len, n - i), 0, -1):
                canon = self.rules.get(tuple(seq[i : i + span]))
                if canon is not None:
                    if tried is not None:
                        tried.add(seq[i])
                    out.extend(canon)
                    done = i + span
                    break
            else:
                out.append(seq[i])
        out.extend(seq[done:])
        return out
