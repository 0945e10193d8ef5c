"""The tracker's settings (TrackerConfig): what the worker sets and what evaluations vary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


DEFAULT_ALIASES: tuple[tuple[str, ...], ...] = (
    ("Islamic State", "ISIS", "ISIL", "IS", "Daesh"),
    ("North Korea", "DPRK", "Pyongyang", "Democratic People's Republic of Korea"),
    ("South Korea", "ROK", "Republic of Korea", "Seoul"),
    ("United States", "U.S.", "US", "USA", "U.S.A."),
    ("United Kingdom", "UK", "U.K.", "Britain", "Great Britain"),
    ("United Nations", "UN", "U.N."),
)
"""Generic equivalences on by default (config.default_aliases); storylines add their own."""

Normalization = Literal["none", "zscore", "tail"]
Explain = Literal["all", "followups"]
ScoreMode = Literal["centroid", "nearest", "mix"]


@dataclass(frozen=True)
class TrackerConfig:
    """Every tunable, with the shipped default. Defaults were chosen on held-out stories."""

    threshold: float = 0.03
    """The global knob (0.03: the median of the knobs tuned on halves of the dev stories, so
    that it is not fitted to the stories it is measured on). normalization="none": the cosine
    threshold itself. "tail": the margin
    above the storyline's background quantile. "zscore": standard deviations above the
    background mean. Every storyline thus gets its own effective threshold (Decision.threshold)."""
    normalization: Normalization = "tail"
    score_mode: ScoreMode = "centroid"
    """Similarity to the profile centroid, to the nearest member (seed/follow-up), or their mean."""
    df_prior_docs: float = 0.0
    """Pseudo-documents added to N in the IDF (a term is assumed absent from them): keeps IDF
    sensible while the window is still small or a burst dominates it."""
    title_weight: float = 1.0
    """Extra term weight for words that occur in the title (added to the sublinear tf)."""
    phrase_weight: float = 0.5
    """Weight of adjacent-word-pair features relative to single words."""
    name_weight: float = 1.0
    """Multiplier for profile features that are names or keywords of the storyline."""
    keyword_weight: float = 1.0
    """Weight of the keyword pseudo-document in the profile, relative to one seed."""
    body_max_tokens: int = 400
    """Only the first N content tokens of the text count: the lead carries the story."""
    profile_terms: int = 150
    """Profile vectors keep their N heaviest features: less noise (150 was at least as good
    as 300 or 500 on the dev file, 100 was worse) and half the profile matrix's rows."""
    df_window: int = 20000
    """Documents in the sliding window that gives document frequencies."""
    bucket_key: bytes = b""
    """The secret that keys features' document-frequency buckets (``analysis.bucket_features``):
    the store's own in the worker (``storylines.bucket_key``); none in evaluations and tests."""
    bg_window: int = 1000
    """Background scores kept per storyline for normalisation."""
    bg_init_docs: int = 1000
    """Recent documents kept to give a new storyline its background at once."""
    bg_quantile: float = 0.99
    """normalization="tail": the background quantile the margin is added to."""
    bg_prior_n: float = 20.0
    """Pseudo-observations of the prior below, so a storyline with little background is sane."""
    bg_prior_mean: float = 0.02
    bg_prior_std: float = 0.03
    bg_prior_quantile: float = 0.1
    bg_min_std: float = 0.01
    bg_split_short: bool = False
    """Keep separate background statistics for headline-only items and items with text."""
    short_tokens: int = 25
    """Fewer content tokens than this in the text: the item counts as headline-only."""
    recency_penalty: float = 0.03
    """If > 0, ``recency_penalty * ln(1 + silence / recency_scale)`` is subtracted from the
    cosine, where silence is the time since the storyline's last seed or follow-up. News is
    bursty but storylines come back, hence a slowly growing (logarithmic) penalty, and additive
    so that a strong match still passes after a long silence."""
    recency_scale: float = 3600.0
    activity_margin: float = 0.1
    """A follow-up renews the storyline's activity clock only if its score clears the threshold
    by this much: weak follow-ups (possible false alarms) must not keep a storyline warm."""
    adapt: bool = True
    adapt_margin: float = 0.1
    """A follow-up whose score is >= its threshold + margin joins the profile..."""
    adapt_weight: float = 1.0
    """...with this weight relative to a seed..."""
    adapt_rebuild_background: bool = True
    """After adapting, re-score the recent window so the background matches the new profile."""
    adapt_rebuild_drift: float = 0.05
    """...but only once the profile has moved this far (1 - cosine) from the one the background
    was measured against: 0 rebuilds after every adoption."""
    adapt_max: int = 20
    """...and at most this many (oldest dropped first); seeds are never dropped."""
    adapt_guard: float = 0.0
    """Drift guard: the follow-up must also score >= threshold + guard against the seeds alone."""
    adapt_duplicate: float = 0.9
    """A follow-up this similar (cosine) to a member already in the profile is not adopted: a
    syndicated copy or a re-publication adds nothing and would let one text weigh double."""
    mark_weight: float = 0.5
    """A "yes" mark joins the profile with this weight relative to a seed: half, so that one
    wrong mark does not swing a storyline (on the dev file, a wrong "yes" per storyline at 1.0
    raised C_det from 0.054 to 0.065; at 0.5 it does not)."""
    mark_near: float = 0.5
    """A reader's mark (Tracker.mark) decides for items at least this similar (cosine) to the
    marked item and more similar to it than to any item of the other kind: like an item marked
    "not a follow-up", NO; like one marked "a follow-up" and naming the storyline's units, YES."""
    refresh_every: int = 100
    """Profiles are re-weighted with current IDF after this many observed documents..."""
    refresh_fraction: float = 0.1
    """...or after this fraction of the DF window, when that is more (IDF of a large window
    moves slowly; the cost of a refresh per item stays bounded)."""
    explain: Explain = "followups"
    """Compute reasons for every decision, or only for follow-ups and vetoes (the product
    stores reasons only for those; several times faster with many storylines)."""
    top_terms: int = 6
    default_aliases: tuple[tuple[str, ...], ...] = DEFAULT_ALIASES
    spelling_variants: bool = True
    """Rewrite spelling variants of a storyline's names (Park Myung-ho -> Pak Myong-ho): see
    ``Tracker._fixes``."""
    evidence_threshold: float = 1.0
    """An item is also a follow-up when the storyline's own names stand this prominently in it,
    on a feed that is on the storyline's beat (evidence.py: one name in the title is 1.0)."""
    evidence_window: int = 500
    """Recent items per feed from which the share of items naming each unit is counted."""
