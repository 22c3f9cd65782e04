"""Domain presets: each domain's source format, item kinds, vocabulary, dates and text length.

``DOMAIN_PRESETS`` lists the domains the generator knows; ``positive_words`` and
``negative_words`` are every opinion word it can emit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rayrec.data.synthetic.vocabulary import GENERAL_NEGATIVE, GENERAL_POSITIVE, _words

SourceFormat = Literal["amazon2014", "yelp"]


@dataclass(frozen=True)
class ItemKind:
    """A family of items within a domain (one for Amazon domains; several for Yelp)."""

    name: str
    weight: float
    nouns: tuple[str, ...]
    neutral: tuple[str, ...]  # sentences without opinion words; may use {noun}
    #: Yelp: (categories string, business name suffix) of the kind's businesses.
    businesses: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DomainPreset:
    """Everything domain-specific: format, file code, vocabulary, dates and text length."""

    name: str
    format: SourceFormat
    code: str  # one base-36 character in the asin, keeps item ids unique across domains
    kinds: tuple[ItemKind, ...]
    positive: tuple[str, ...]  # domain-specific opinion words, on top of the general ones
    negative: tuple[str, ...]
    verbosity: float  # multiplies the user's sentence count
    start: str  # first review date (ISO)
    end: str  # last review date (ISO)
    #: Mean and standard deviation of a review's word pieces (MiniLM's uncased BERT
    #: vocabulary, no special tokens) with ``text_length="realistic"``.
    word_pieces: tuple[float, float] = (115.0, 145.0)


_ELECTRONICS = DomainPreset(
    name="Electronics",
    format="amazon2014",
    code="E",
    kinds=(
        ItemKind(
            name="device",
            weight=1.0,
            nouns=_words(
                "cable battery screen charger case adapter remote speaker keyboard mouse"
                " headphones port button cord plug camera lens mount sound display"
            ),
            neutral=(
                "I bought this {noun} for my laptop",
                "it arrived two days after I ordered it",
                "I have had the {noun} for about a month now",
                "the {noun} came in a small box",
                "I use it every day at the office",
                "this replaced an old {noun} I had",
                "my son uses it for school",
                "the {noun} {is} black and a bit smaller than I expected",
            ),
        ),
    ),
    positive=_words("sturdy durable fast responsive sharp bright crisp quiet sleek handy"),
    negative=_words(
        "flimsy fragile noisy slow clunky laggy dim buggy unresponsive defective faulty"
    ),
    verbosity=1.0,
    word_pieces=(140.0, 170.0),
    start="2004-01-01",
    end="2014-07-23",
)
_KINDLE = DomainPreset(
    name="Kindle_Store",
    format="amazon2014",
    code="K",
    kinds=(
        ItemKind(
            name="book",
            weight=1.0,
            nouns=_words(
                "story author characters book writing ending protagonist villain dialogue series"
                " narrator novel setting romance pacing chapters"
            ),
            neutral=(
                "I read this book over the weekend",
                "this is the second book in the series",
                "I downloaded it to my kindle last month",
                "the story takes place in a small town",
                "I finished it in two days",
                "it is a short read of about a hundred pages",
                "I downloaded it during a sale",
            ),
        ),
    ),
    positive=_words(
        "captivating engaging vivid witty charming heartwarming entertaining clever inspiring"
        " powerful"
    ),
    negative=_words("boring tedious shallow repetitive cliched implausible"),
    verbosity=1.3,
    word_pieces=(125.0, 150.0),
    start="2007-11-19",
    end="2014-07-23",
)
_MUSICAL_INSTRUMENTS = DomainPreset(
    name="Musical_Instruments",
    format="amazon2014",
    code="M",
    kinds=(
        ItemKind(
            name="gear",
            weight=1.0,
            nouns=_words(
                "strings pedal amp tuner stand cable guitar strap picks mic pickup capo knobs tone"
            ),
            neutral=(
                "I bought this {noun} for my son",
                "I use it with my acoustic guitar",
                "I play in a small band on weekends",
                "the {noun} came in a padded box",
                "I have been playing for about ten years",
            ),
        ),
    ),
    positive=_words("sturdy durable rich warm smooth clear crisp accurate stable"),
    negative=_words("flimsy noisy stiff harsh muddy unstable inaccurate"),
    verbosity=1.0,
    word_pieces=(115.0, 145.0),
    start="2004-01-01",
    end="2014-07-23",
)
_YELP = DomainPreset(
    name="Yelp",
    format="yelp",
    code="Y",
    kinds=(
        ItemKind(
            name="restaurant",
            weight=0.72,
            nouns=_words(
                "food service waiter waitress menu staff salsa tacos pizza burger fries patio"
                " drinks dessert portions bartender atmosphere"
            ),
            neutral=(
                "we came here for dinner on a friday night",
                "I ordered the tacos and a drink",
                "we were seated at a table by the window",
                "my husband and I stopped in for lunch",
                "we waited about ten minutes for a table",
                "we will be back next time we are in town",
                "parking is in the lot behind the building",
            ),
            businesses=(
                ("Restaurants, Mexican", "Taqueria"),
                ("Mexican, Restaurants, Food", "Cantina"),
                ("Restaurants, Pizza, Italian", "Pizzeria"),
                ("Burgers, Restaurants, American (Traditional)", "Grill"),
                ("Restaurants, Sandwiches, Breakfast & Brunch", "Cafe"),
                ("Thai, Restaurants", "Thai Kitchen"),
                ("Restaurants, Japanese, Sushi Bars", "Sushi"),
                ("Nightlife, Bars, Restaurants", "Tavern"),
            ),
        ),
        ItemKind(
            name="shop",
            weight=0.28,
            nouns=_words(
                "staff service store selection appointment owner shop technician manicure"
                " haircut prices"
            ),
            neutral=(
                "I stopped in on a saturday morning",
                "I made an appointment online",
                "this shop is close to my house",
                "I have been coming here for two years",
                "I called ahead to ask about the {noun}",
            ),
            businesses=(
                ("Shopping, Fashion", "Boutique"),
                ("Beauty & Spas, Nail Salons", "Nails"),
                ("Hair Salons, Beauty & Spas", "Hair Studio"),
                ("Automotive, Auto Repair", "Auto Repair"),
                ("Home Services, Movers", "Movers"),
                ("Food, Coffee & Tea", "Coffee"),
            ),
        ),
    ),
    positive=_words(
        "delicious fresh friendly attentive cozy generous lively authentic knowledgeable courteous"
    ),
    negative=_words(
        "rude dirty bland stale greasy cold crowded inattentive expensive filthy lukewarm"
    ),
    verbosity=1.4,
    word_pieces=(150.0, 140.0),
    start="2008-01-01",
    end="2018-11-14",
)
#: Domains the generator knows, by name (the Amazon 2014 file stem, or "Yelp").
DOMAIN_PRESETS: dict[str, DomainPreset] = {
    p.name: p for p in (_ELECTRONICS, _KINDLE, _MUSICAL_INSTRUMENTS, _YELP)
}


def positive_words() -> frozenset[str]:
    """All positive opinion words the generator can emit."""
    return frozenset(GENERAL_POSITIVE).union(*(p.positive for p in DOMAIN_PRESETS.values()))


def negative_words() -> frozenset[str]:
    """All negative opinion words the generator can emit."""
    return frozenset(GENERAL_NEGATIVE).union(*(p.negative for p in DOMAIN_PRESETS.values()))
