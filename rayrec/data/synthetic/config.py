"""What to generate (``SyntheticConfig``) and what was written (``SourceFile``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rayrec.data.synthetic.presets import DOMAIN_PRESETS, SourceFormat

PerDomain = int | dict[str, int]


class SyntheticConfig(BaseModel):
    """What to generate. The defaults give a demo corpus: 3 domains x 12k reviews, of which a
    5-core filter keeps most; ``scaled(n)`` keeps the same density for ``n`` reviews per domain.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = Field(0, ge=0)
    domains: tuple[str, ...] = ("Electronics", "Kindle_Store", "Yelp")
    reviews_per_domain: PerDomain = 12_000
    n_shared_users: int = Field(1_000, ge=0)
    n_users_per_domain: PerDomain = 600
    n_items_per_domain: PerDomain = 600
    latent_dim: int = Field(3, ge=1)
    #: P(rating = 1..5); reached through quantile cut points of the latent score.
    rating_distribution: tuple[float, float, float, float, float] = (0.06, 0.05, 0.09, 0.2, 0.6)
    user_bias_std: float = Field(0.4, ge=0)
    item_bias_std: float = Field(0.4, ge=0)
    #: Standard deviation of the user-item interaction p_u . q_i.
    interaction_std: float = Field(1.0, ge=0)
    noise_std: float = Field(0.4, ge=0)
    #: Correlation of item bias with log item popularity (popular items rate a bit higher).
    popularity_bias: float = 0.15
    #: Zipf exponents and rank offsets (as a fraction of the population) of the activity laws.
    user_zipf: float = Field(1.0, gt=0)
    item_zipf: float = Field(0.9, gt=0)
    user_rank_offset: float = Field(0.08, gt=0)
    item_rank_offset: float = Field(0.05, gt=0)
    #: A user reviews at most this share of a domain's items (reviews are of distinct items).
    max_user_item_share: float = Field(0.2, gt=0, le=0.5)
    #: Share of user preference for its favourite opinion words (vs the whole vocabulary).
    style_strength: float = Field(0.75, ge=0, le=1)
    #: Share of Yelp businesses located in AZ.
    yelp_az_share: float = Field(0.8, ge=0, le=1)
    #: Share of Amazon records without a ``reviewerName`` key, as in the real files.
    missing_name_rate: float = Field(0.005, ge=0, le=1)
    calibration_samples: int = Field(200_000, ge=1_000)
    #: "short": 1-10 sentences, about 25-35 word pieces (fast tests and demos); "realistic":
    #: each domain's ``DomainPreset.word_pieces`` (a log-normal length per review, the
    #: user's verbosity kept), e.g. Musical Instruments' measured 115 +- 145 word pieces.
    text_length: Literal["short", "realistic"] = "short"

    @model_validator(mode="after")
    def _check(self) -> SyntheticConfig:
        if not self.domains or len(set(self.domains)) != len(self.domains):
            raise ValueError("domains must be a non-empty list of distinct names")
        unknown = [d for d in self.domains if d not in DOMAIN_PRESETS]
        if unknown:
            raise ValueError(f"unknown domains {unknown}; known: {sorted(DOMAIN_PRESETS)}")
        for field in ("reviews_per_domain", "n_users_per_domain", "n_items_per_domain"):
            value = getattr(self, field)
            if isinstance(value, dict):
                missing = set(self.domains) - set(value)
                extra = set(value) - set(self.domains)
                if missing or extra:
                    raise ValueError(f"{field}: missing {sorted(missing)}, extra {sorted(extra)}")
            values = value.values() if isinstance(value, dict) else [value]
            if any(v < 1 for v in values):
                raise ValueError(f"{field} must be >= 1")
        if abs(sum(self.rating_distribution) - 1.0) > 1e-6 or min(self.rating_distribution) <= 0:
            raise ValueError("rating_distribution must be 5 positive probabilities summing to 1")
        for domain in self.domains:
            cap = self.max_items_per_user(domain)
            if self.reviews(domain) > cap * (self.n_shared_users + self.own_users(domain)):
                raise ValueError(f"{domain}: too many reviews for the users and items given")
        return self

    def reviews(self, domain: str) -> int:
        return _pick(self.reviews_per_domain, domain)

    def own_users(self, domain: str) -> int:
        return _pick(self.n_users_per_domain, domain)

    def items(self, domain: str) -> int:
        return _pick(self.n_items_per_domain, domain)

    def max_items_per_user(self, domain: str) -> int:
        return max(1, int(self.items(domain) * self.max_user_item_share))

    @classmethod
    def scaled(cls, reviews_per_domain: int, **overrides: Any) -> SyntheticConfig:
        """A config with ``reviews_per_domain`` reviews per domain and users and items scaled
        to keep the density of the defaults (which are sized for 12k reviews per domain)."""
        base = cls()
        factor = reviews_per_domain / _pick(base.reviews_per_domain, base.domains[0])
        values: dict[str, Any] = {
            "reviews_per_domain": reviews_per_domain,
            "n_shared_users": max(1, round(base.n_shared_users * factor)),
            "n_users_per_domain": max(1, round(_pick(base.n_users_per_domain, "") * factor)),
            "n_items_per_domain": max(50, round(_pick(base.n_items_per_domain, "") * factor)),
        }
        values.update(overrides)
        return cls(**values)


def _pick(value: PerDomain, domain: str) -> int:
    return value[domain] if isinstance(value, dict) else value


@dataclass(frozen=True)
class SourceFile:
    """One written source, as a reader needs it (``business_uri`` only for Yelp)."""

    format: SourceFormat
    uri: str
    domain: str
    business_uri: str | None = None
    n_reviews: int = 0
