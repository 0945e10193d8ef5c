"""Why and why not: every storyline's decision on one item, in words and as JSON."""

from __future__ import annotations

import datetime as dt
import textwrap
from typing import TYPE_CHECKING, Any

from worker.clock import to_iso
from worker.tracking.evidence import MIN_SOURCE_DOCS
from worker.models import marked_like, plural
from worker.report.tables import WIDTH, short_text

if TYPE_CHECKING:
    from worker.tracking.evidence import Counted
    from worker.tracking.decisions import Decision
    from worker.why import ItemWhy
    from worker.why import StorylineWhy


LABEL = 14  # where a decision line's text starts ("    evidence  ")


def render_why(why: ItemWhy) -> str:
    """Every storyline's decision on the item with its reasons, as a list a person reads."""
    lines = ["Storylines: why and why not"]
    if why.copy_of is not None:
        lines.append(_wrap(f"A copy of item {why.copy_of}: copies are not tracked, their original is "
                           f"(storywatch items show {why.copy_of}).", "  "))
    else:
        lines.append(_wrap(f"Each storyline's decision made again as the tracker sees the store now: after "
                           f"replaying {plural(why.replayed, 'item')} {'first seen' if why.by_arrival else 'published'} "
                           f"in the {why.window.days} days "
                           "before it. The item is decided, not learnt from: nothing is written.", "  "))
        if not why.storylines:
            lines.append("  No storylines: add [[storylines]] to the config or use `storywatch storylines add`.")
    if why.differs:
        lines.append(_wrap("Differs from what was recorded for " + ", ".join(why.differs) + ": the recorded "
                           "links stand as stored; the reasons below are as the tracker sees it now.", "  "))
    for storyline in why.storylines:
        lines += ["", *_storyline_why(storyline, why.item_id)]
    if any(s.decision is not None for s in why.storylines):
        lines += ["", _wrap("To change a decision: mark the item (`storywatch items mark ID --storyline S "
                            "--yes|--no`: the storyline learns from it), or keywords and aliases (the names "
                            "evidence counts), seeds (the profile the score and closest compare with), [tracking] threshold or the "
                            "storyline's own threshold (see the README, `storywatch items show`).", "")]
    return "\n".join(lines)


def _storyline_why(s: StorylineWhy, item_id: int) -> list[str]:
    lines = [f"  {s.storyline_id}: {_verdict(s)}", _field("recorded", _recorded(s))]
    d = s.decision
    if d is None:
        return lines + [_field("why", _idle(s))]
    lines += [_score(s, d), *_evidence_why(s, d)]
    reasons = d.reasons
    if reasons is not None:
        if reasons.like_marked is not None:
            marked, followup, _ = reasons.like_marked
            lines.append(_field("mark", f"you marked it {'a follow-up' if followup else 'not a follow-up'}"
                                if marked == str(item_id) else marked_like(list(reasons.like_marked))))
        if reasons.vetoed_by:
            lines.append(_field("vetoed", f"the exclude term '{reasons.vetoed_by}' is in the item"))
        if reasons.missing:
            lines.append(_field("vetoed", f"its title names {' and '.join(reasons.missing)}, which the item "
                                          "does not name and its feed does not imply"))
        lines.append(_field("names", ", ".join(reasons.names) or "none of its keywords or known names"))
        terms = ", ".join(f"{word} {weight:.3f}" for (_, weight), word in zip(reasons.top_terms, s.words) if word)
        lines.append(_field("terms", terms or "no term shared with its profile"))
    lines.append(_field("closest", _closest(s)))
    return lines


def _like_marked(like: tuple[str, bool, float]) -> dict[str, Any]:
    item_id, followup, similarity = like
    return {"item_id": int(item_id) if item_id.isdigit() else item_id, "followup": followup, "similarity": similarity}


def _score(s: StorylineWhy, d: Decision) -> str:
    """The similarity against its threshold: the background level plus the threshold setting."""
    level = d.score - d.margin  # the worker normalises by the background's tail: margin = score - level
    compare = "≥" if d.score >= d.threshold else "below"
    silence = f" minus {d.raw - d.score:.3f} for the storyline's silence" if d.raw > d.score else ""
    return _field("score", f"{d.score:.3f} {compare} threshold {d.threshold:.3f} (background {level:.3f} + "
                  f"threshold setting {s.knob:.3f}); cosine {d.raw:.3f}{silence}")


def _verdict(s: StorylineWhy) -> str:
    if s.idle:
        return {"seed": "a seed", "inactive": "not tracked", "copy": "not decided (a copy)"}.get(s.idle, "not decided")
    if s.followup:
        return "follow-up (by " + " and ".join(s.by) + ")"
    reasons = s.decision.reasons if s.decision is not None else None
    if reasons is not None and reasons.like_marked is not None:
        return "not a follow-up (by your mark)"
    vetoed = reasons is not None and (reasons.vetoed_by or reasons.missing)
    return "not a follow-up" + (" (vetoed)" if vetoed else "")


def _recorded(s: StorylineWhy) -> str:
    r = s.recorded
    if r is None:
        return "nothing (not linked)"
    if r.decision == "seed":
        return f"seed, since {r.decided_at:%Y-%m-%d}"
    scored = f" (score {r.score:.3f}, threshold {r.threshold:.3f})" if r.score is not None and r.threshold is not None else ""
    return f"follow-up, decided {r.decided_at:%Y-%m-%d}{scored}"


def _idle(s: StorylineWhy) -> str:
    at = f"{s.idle_at:%Y-%m-%d}" if s.idle_at else ""
    return {
        "seed": "the item is one of its seeds: a storyline decides on what follows them",
        "early": f"published before the storyline starts ({_moment(s.idle_at)}: its first seed)",
        "expired": f"the storyline expired on {at}: expires_after passed without a follow-up",
        "inactive": "the storyline is inactive (no longer in the config): the link stays as recorded",
        "copy": "the item is a copy: the link stays as recorded",
    }.get(s.idle, s.idle)


def _moment(at: dt.datetime | None) -> str:
    """A date, with its time (UTC) unless midnight: a seed dated to the day, or one published
    the same day as the item, which only the time tells apart."""
    if at is None:
        return ""
    at = at.astimezone(dt.timezone.utc) if at.tzinfo else at
    return f"{at:%Y-%m-%d}" if at.time() == dt.time() else f"{at:%Y-%m-%d %H:%M} UTC"


def _evidence_why(s: StorylineWhy, d: Decision) -> list[str]:
    compare = "≥" if d.evidence >= s.evidence_threshold else "below"
    head = f"{d.evidence:.2f} {compare} evidence threshold {s.evidence_threshold:.2f}"
    counted = d.reasons.counted if d.reasons is not None else ()
    on_beat = any(c.implied for c in counted)
    if not on_beat:
        head += ": off its beat, " + _off_beat(d.reasons.feed_items if d.reasons is not None else 0)
    lines = [_field("evidence", head)]
    lines += [_field("", _unit(c, on_beat), indent=LABEL + 2) for c in counted]
    if not counted:
        lines.append(_field("", "none of its names or keywords is in the item", indent=LABEL + 2))
    return lines


def _off_beat(feed_items: int) -> str:
    """Why evidence counts nothing: no name of the storyline is implied by the item's feed."""
    if feed_items < MIN_SOURCE_DOCS:
        return (f"so it counts 0: the window holds {plural(feed_items, 'item')} of this feed, fewer than "
                f"the {MIN_SOURCE_DOCS} needed to tell which names the feed implies")
    return (f"so it counts 0: none of its names is in half of this feed's {feed_items} recent items "
            "(evidence counts only where the feed is on the storyline's beat)")


def _unit(c: Counted, on_beat: bool) -> str:
    """One unit of evidence: "Russia: title, 2×, weight 1.0 × salience 1.0 = 1.00"."""
    share = f" (in {c.share:.0%} of the feed's items)" if c.share else ""
    if c.implied:
        return f"{c.label}: implied by the feed{share}: on the beat, adds 0"
    times = "once" if c.count <= 1 else f"{c.count}×"
    where = f"{c.label}{'' if c.name else ' (topic)'}: {c.zone}, {times}{c.spread}"
    if not on_beat:
        return where
    product = f"weight {c.weight:.1f}{share} × salience {c.salience:.1f}" + ("" if c.name else " × 0.5")
    alone = "" if c.name or c.points else " (a topic counts only beside a name in the title or lead)"
    return f"{where}, {product} = {c.points:.2f}{alone}"


def _closest(s: StorylineWhy) -> str:
    c = s.closest
    if c is None:
        return "no seed or follow-up shares a term with the item"
    return f"{c.kind} #{c.item_id} (similarity {c.similarity:.3f}): {short_text(c.title, 80)}"


def _field(label: str, text: str, indent: int = LABEL) -> str:
    """A labelled line wrapped at WIDTH, continued under its text."""
    head = f"    {label:<{indent - 4}}" if label else " " * indent
    return textwrap.fill(text, WIDTH, initial_indent=head, subsequent_indent=" " * indent,
                         break_long_words=False, break_on_hyphens=False)


def _wrap(text: str, indent: str) -> str:
    return textwrap.fill(text, WIDTH, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False)


def why_dict(why: ItemWhy) -> dict[str, Any]:
    return {"as_tracked_now": why.copy_of is None, "copy_of": why.copy_of, "window_days": why.window.days,
            "replayed": why.replayed, "differs": why.differs,
            "storylines": [_storyline_dict(s) for s in why.storylines]}


def _storyline_dict(s: StorylineWhy) -> dict[str, Any]:
    r, d = s.recorded, s.decision
    found: dict[str, Any] = {
        "id": s.storyline_id, "title": s.title,
        "recorded": None if r is None else {"decision": r.decision, "score": r.score, "threshold": r.threshold,
                                            "decided_at": to_iso(r.decided_at)},
        "decided": d is not None, "not_decided": s.idle or None,
        "not_decided_at": to_iso(s.idle_at) if s.idle_at else None,
        "followup": s.followup, "by": list(s.by), "differs": s.differs,
    }
    if d is None:
        return found
    reasons = d.reasons
    return found | {
        "score": round(d.score, 4), "threshold": round(d.threshold, 4), "background": round(d.score - d.margin, 4),
        "threshold_setting": s.knob, "cosine": round(d.raw, 4), "recency": round(d.raw - d.score, 4),
        "vetoed_by": reasons.vetoed_by if reasons else None,
        "missing": list(reasons.missing) if reasons else [],
        "like_marked": _like_marked(reasons.like_marked) if reasons and reasons.like_marked else None,
        "evidence": {
            "score": round(d.evidence, 4), "threshold": s.evidence_threshold,
            "on_beat": any(c.implied for c in reasons.counted) if reasons else False,
            "feed_items": reasons.feed_items if reasons else 0,
            "units": [{"label": c.label, "name": c.name, "zone": c.zone or None, "count": c.count,
                       "share": round(c.share, 4), "weight": round(c.weight, 4), "salience": round(c.salience, 4),
                       "points": round(c.points, 4), "implied": c.implied} for c in (reasons.counted if reasons else ())],
        },
        "names": list(reasons.names) if reasons else [],
        "terms": [[t, w, word] for (t, w), word in zip(reasons.top_terms, s.words)] if reasons else [],
        "closest": None if s.closest is None else {"item_id": s.closest.item_id, "kind": s.closest.kind,
                                                   "title": s.closest.title, "similarity": s.closest.similarity},
    }
